"""HTTPS for ``glint serve``: the certificate and key uvicorn is given, checked before start.

uvicorn loads them only once it starts serving (in every worker, with several), and what
OpenSSL says then (``[SSL] PEM lib (_ssl.c:3926)``) names neither the file nor the problem. So
:func:`server_tls` loads the pair once up front, before any index is loaded or any port bound,
and turns each failure into one line that says which file is wrong and how.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerTLS", "server_tls"]


@dataclass(frozen=True)
class ServerTLS:
    """What uvicorn is given (its ``ssl_certfile``, ``ssl_keyfile`` and
    ``ssl_keyfile_password``); all None for plain HTTP."""

    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None


class _NeedsPassword(Exception):
    """The key is encrypted and no passphrase was given (raised instead of OpenSSL's prompt)."""


def _no_password() -> bytes:
    raise _NeedsPassword


def _named(name: str, path: Path) -> str:
    """``--ssl-certfile cert.pem`` or ``GLINT_SSL_CERTFILE=cert.pem``, as the user wrote it."""
    return f"{name}={path}" if name.startswith("GLINT_") else f"{name} {path}"


def _check_readable(name: str, path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{_named(name, path)}: cannot read it ({reason})") from None


def server_tls(
    certfile: Path | None,
    keyfile: Path | None,
    password: str | None = None,
    *,
    cert_name: str = "--ssl-certfile",
    key_name: str = "--ssl-keyfile",
) -> ServerTLS:
    """What uvicorn needs to serve HTTPS with ``certfile`` and ``keyfile``, or, when neither is
    given, plain HTTP.

    Both files or neither; each must be readable, the certificate a PEM certificate and the
    key its PEM private key (decrypted with ``password`` when encrypted). Anything else is a
    one-line ValueError naming the file by ``cert_name``/``key_name``, the flag or variable it
    came from. Never prompts for a passphrase.
    """
    if certfile is None and keyfile is None:
        return ServerTLS()
    if certfile is None:
        raise ValueError(
            f"{key_name} needs --ssl-certfile FILE (or GLINT_SSL_CERTFILE) too: HTTPS takes a "
            "certificate and its private key"
        )
    if keyfile is None:
        raise ValueError(
            f"{cert_name} needs --ssl-keyfile FILE (or GLINT_SSL_KEYFILE) too: HTTPS takes a "
            "certificate and its private key"
        )
    cert, key = _named(cert_name, certfile), _named(key_name, keyfile)
    _check_readable(cert_name, certfile)
    _check_readable(key_name, keyfile)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=certfile)
    except ssl.SSLError:
        raise ValueError(f"{cert} has no PEM certificate in it") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, password if password else _no_password)
    except _NeedsPassword:
        raise ValueError(
            f"{key} is encrypted: give its passphrase in GLINT_SSL_KEYFILE_PASSWORD"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = f"is not the private key of {cert}"
        elif password:
            reason = "is not a PEM private key, or GLINT_SSL_KEYFILE_PASSWORD does not decrypt it"
        else:
            reason = "is not a PEM private key"
        raise ValueError(f"{key} {reason}") from None
    return ServerTLS(str(certfile), str(keyfile), password or None)
