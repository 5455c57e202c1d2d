"""The ``glint`` command: the indexer's sub-commands plus ``serve``.

It runs on the base install (the client's dependencies): the index and the server are
imported only where glint-vector's extras that bring them are installed, and their commands
otherwise say in one line which extra to install.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from glint.loadtest.cli import add_loadtest_command

__all__ = ["main"]

log = logging.getLogger("glint.serve")

# The extras of glint-vector that commands need beyond the base install (numpy, pydantic,
# httpx, orjson: the client and `glint loadtest`), each with the modules whose absence says
# that it is not installed.
_EXTRAS: dict[str, tuple[str, ...]] = {
    "index": ("numba", "faiss", "tqdm", "threadpoolctl"),
    "server": (
        *("numba", "faiss", "tqdm", "threadpoolctl"),
        *("fastapi", "uvicorn", "prometheus_client", "pydantic_settings"),
    ),
}
# glint.index.cli's commands (add_index_commands): without the index extra they are
# registered by name only, to say which extra to install.
_INDEX_COMMANDS = ("build", "search", "info")
_NEEDS = {**dict.fromkeys(_INDEX_COMMANDS, "index"), "serve": "server"}


def _installed(extra: str) -> bool:
    """Whether glint-vector's ``extra`` is installed: its modules are found (not imported)."""
    return all(importlib.util.find_spec(module) is not None for module in _EXTRAS[extra])


def _extra_hint(command: str) -> str:
    """The one line that says which extra ``glint COMMAND`` needs."""
    extra = _NEEDS[command]
    return f"glint {command} needs the {extra} extra: pip install 'glint-vector[{extra}]'"


def _one_line(exc: BaseException) -> str:
    """glint.index.errors.one_line, which the base install does not have."""
    return " ".join(str(exc).split()) or type(exc).__name__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors are one line, exit 2."""
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _is_loopback(host: str) -> bool:
    """Whether binding ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8,
    ``::1``). Any other name or address, ``0.0.0.0`` and ``::`` included, is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _source(args: argparse.Namespace, key: str) -> str:
    """Where setting ``key`` came from, its flag (``--ssl-certfile``) or else its variable
    (``GLINT_SSL_CERTFILE``), so that an error names what the user wrote."""
    if getattr(args, key, None) is not None:
        return f"--{key.replace('_', '-')}"
    return f"GLINT_{key.upper()}"


def _check_exposure(args: argparse.Namespace, host: str, keys: bool, allow: bool) -> None:
    """No API keys on a host that is not loopback would serve anyone who can reach it: refused
    (before anything is loaded or bound) unless ``allow`` says the network is trusted."""
    if keys or allow or _is_loopback(host):
        return
    source = _source(args, "host")
    given = f"{source}={host}" if source.startswith("GLINT_") else f"{source} {host}"
    raise ValueError(
        f"{given} without API keys would serve anyone who can reach it: "
        "give keys (--api-keys FILE or GLINT_API_KEYS), bind 127.0.0.1, or pass "
        "--allow-unauthenticated to serve without auth on a trusted network"
    )


def _check_dirs(targets: list[tuple[str, Path]]) -> None:
    """Start only when at least one directory can be served. A bad directory among good ones
    does not stop the server: its start-up load fails on its own, the other collections
    serve and ``/readyz`` names it (``degraded``). The check is the cheap one (the manifest
    and the files' sizes); checksums are verified as each index loads."""
    from glint.index.errors import GlintError, one_line
    from glint.index.storage import IndexReader

    problems = []
    for name, path in targets:
        try:
            IndexReader(path, verify=False)
            return
        except (GlintError, OSError) as exc:
            problems.append((name, one_line(exc)))
    if len(problems) == 1:
        raise ValueError(problems[0][1])
    listed = "; ".join(f"{name}: {reason}" for name, reason in problems)
    raise ValueError(f"none of the {len(problems)} index directories can be served: {listed}")


def _sweep(targets: list[tuple[str, Path]]) -> None:
    """Clear what dead builds left beside each directory (putting back an index a dead
    replacement had moved aside) before anything is loaded."""
    from glint.index.errors import GlintError, one_line
    from glint.index.storage import sweep_stale_temps

    for _, path in targets:
        parent, name = path.absolute().parent, path.absolute().name
        try:
            sweep_stale_temps(parent, name)
        except (GlintError, OSError) as exc:  # not ours to clean (read-only, say): serve on
            log.warning("could not clear leftovers of %s: %s", path, one_line(exc))


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here so that `glint build/search/info` do not pay for the web stack.
    import uvicorn
    from pydantic import ValidationError

    from .auth import KeyRing
    from .observability import configure_logging
    from .registry import parse_index_arg
    from .settings import Settings
    from .tls import server_tls

    targets = [parse_index_arg(arg) for arg in args.index_dirs]
    seen: set[str] = set()
    for name, _ in targets:
        if name in seen:
            raise ValueError(f"collection name {name!r} is given twice; use NAME=DIR to rename one")
        seen.add(name)
    overrides: dict[str, Any] = {"index_dirs": list(args.index_dirs)}
    for key in (
        "host",
        "port",
        "workers",
        "log_format",
        "allow_unauthenticated",
        "ssl_certfile",
        "ssl_keyfile",
    ):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.api_keys is not None:
        overrides["api_keys_file"] = args.api_keys
    try:
        settings = Settings(**overrides)  # flags over GLINT_* variables over defaults
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ValueError(f"{where}: {first['msg']}") from None
    keys = KeyRing.from_sources(settings.api_keys_file, settings.api_keys)
    # Refusals come before anything is swept, loaded or bound: one line, exit 1.
    host = settings.host
    _check_exposure(args, host, keys.enabled, settings.allow_unauthenticated)
    password = settings.ssl_keyfile_password
    tls = server_tls(
        settings.ssl_certfile,
        settings.ssl_keyfile,
        password.get_secret_value() if password is not None else None,
        cert_name=_source(args, "ssl_certfile"),
        key_name=_source(args, "ssl_keyfile"),
    )
    # Logging first, so that every record from here on (faiss's loader included) is JSON.
    log_config = configure_logging(settings.log_level, settings.log_format)
    _sweep(targets)
    _check_dirs(targets)  # one line and exit 1 only when no directory can be served
    if not keys.enabled and _is_loopback(host):
        log.warning("no API keys configured: serving without auth on loopback only")
    elif not keys.enabled:
        log.warning(
            "no API keys configured and --allow-unauthenticated: serving WITHOUT AUTH on %s: "
            "anyone who can reach port %d can search and load, reload or unload collections",
            host,
            settings.port,
        )
    run = functools.partial(
        uvicorn.run,
        host=host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config,
        access_log=False,  # glint logs each request itself, with its id
        timeout_graceful_shutdown=10,
        ssl_certfile=tls.certfile,
        ssl_keyfile=tls.keyfile,
        ssl_keyfile_password=tls.password,
    )
    if settings.workers == 1:
        from .app import create_app

        run(create_app(settings))
        return 0
    # Several processes: each worker builds its app from GLINT_* variables, so the settings
    # travel in the environment (a key's passphrase stays out: only uvicorn needs it, and it
    # hands its workers the TLS context's arguments itself). The indices are memory-mapped,
    # so their pages are shared.
    env = settings.model_dump(mode="json", exclude_none=True, exclude={"ssl_keyfile_password"})
    for key, value in env.items():
        text = json.dumps(value) if isinstance(value, list) else str(value)
        os.environ[f"GLINT_{key.upper()}"] = text
    run("glint.service.app:create_app_from_env", factory=True, workers=settings.workers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="glint", description="glint: compressed-index vector search")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    if _installed("index"):
        from glint.index.cli import add_index_commands

        add_index_commands(sub)
    else:  # by name only: main() says which extra to install
        for name in _INDEX_COMMANDS:
            sub.add_parser(name, add_help=False, help="(needs glint-vector[index])")
    add_loadtest_command(sub)
    if _installed("server"):
        _add_serve_command(sub)
    else:  # by name only, as the index commands above
        sub.add_parser("serve", add_help=False, help="(needs glint-vector[server])")
    return parser


def _add_serve_command(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve index directories over REST")
    serve.add_argument("index_dirs", nargs="+", metavar="DIR", help="DIR or NAME=DIR")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1, or GLINT_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, or GLINT_PORT)")
    serve.add_argument("--api-keys", type=Path, metavar="FILE", help="'ROLE KEY' lines")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="serve without API keys on a --host that is not loopback, for a trusted network "
        "(or GLINT_ALLOW_UNAUTHENTICATED=true); refused without it",
    )
    serve.add_argument(
        "--ssl-certfile",
        type=Path,
        metavar="FILE",
        help="serve HTTPS with this PEM certificate chain (or GLINT_SSL_CERTFILE); needs "
        "--ssl-keyfile",
    )
    serve.add_argument(
        "--ssl-keyfile",
        type=Path,
        metavar="FILE",
        help="the PEM private key of --ssl-certfile (or GLINT_SSL_KEYFILE); an encrypted "
        "key's passphrase goes in GLINT_SSL_KEYFILE_PASSWORD",
    )
    serve.add_argument(
        "--workers", type=int, help="worker processes sharing the indices (default 1)"
    )
    serve.add_argument(
        "--log-format", choices=("json", "text"), help="log records as JSON lines (default)"
    )
    serve.set_defaults(func=cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # parse_args, except that a command whose extra is missing takes any arguments: it says
    # which extra to install, not which arguments it would have taken
    args, unknown = parser.parse_known_args(argv)
    if args.command in _NEEDS and not _installed(_NEEDS[args.command]):
        sys.stderr.write(f"glint: error: {_extra_hint(args.command)}\n")
        return 1
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    user_errors: tuple[type[Exception], ...] = (ValueError, OSError)
    if _installed("index"):
        from glint.index.errors import GlintError
        from glint.index.threads import limit_blas_threads

        user_errors = (GlintError, *user_errors)
        limit_blas_threads(1)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except user_errors as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"glint: error: {message}\n")
        return 1
    except MemoryError as exc:  # numpy's says how much it could not allocate, on one line
        sys.stderr.write(f"glint: error: out of memory ({_one_line(exc)})\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("glint: interrupted\n")
        return 130
    except Exception as exc:  # a bug, not the user's error: still one line, unless asked
        if args.verbose:
            log.exception("glint %s failed", args.command)
        sys.stderr.write(
            f"glint: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(run with --verbose for the traceback)\n"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
