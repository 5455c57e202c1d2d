"""Client configuration: the defaults, and the checks on the base URL, the timeout and the TLS
verification."""

from __future__ import annotations

import os
import ssl

import httpx

from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "TimeoutTypes",
    "VerifyTypes",
    "normalize_base_url",
    "to_timeout",
    "to_verify",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=DEFAULT_CONNECT_TIMEOUT)
USER_AGENT = f"glint-client/{__version__}"

TimeoutTypes = float | httpx.Timeout
"""Seconds (``connect`` is capped at 2 s) or a full :class:`httpx.Timeout`."""

VerifyTypes = bool | str | os.PathLike[str] | ssl.SSLContext
"""How an ``https`` server's certificate is checked: ``True`` against the default trust store,
a path to the CA certificates (a PEM bundle, or a directory of them) to trust instead, an
:class:`ssl.SSLContext` used as is, or ``False`` not at all (test setups only)."""


def to_timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    """``timeout`` as an :class:`httpx.Timeout`; a ValueError unless it is one, or seconds > 0."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be seconds or an httpx.Timeout, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    return httpx.Timeout(float(timeout), connect=min(float(timeout), DEFAULT_CONNECT_TIMEOUT))


def to_verify(verify: VerifyTypes) -> bool | ssl.SSLContext:
    """``verify`` as :mod:`httpx` takes it without a deprecation warning: a bool or an
    :class:`ssl.SSLContext` (a path becomes a context that trusts the CA certificates there);
    a ValueError for anything else, or for a path without readable PEM certificates."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    if not isinstance(verify, str | os.PathLike):
        raise ValueError(
            f"verify must be a bool, a CA bundle path or an ssl.SSLContext, got {verify!r}"
        )
    path = os.fspath(verify)
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except OSError as exc:  # ssl.SSLError is one: a file without a PEM certificate
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ValueError(f"verify={path!r}: cannot load CA certificates ({reason})") from None


def normalize_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; a ValueError unless it is an http(s) URL with a
    host and neither a query nor a fragment."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"invalid base_url {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if url.query or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    return str(url.copy_with(path=url.path.rstrip("/") or "/")).rstrip("/")
