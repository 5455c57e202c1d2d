"""The ``glint`` command: the indexer's sub-commands plus ``serve``."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from glint.index.cli import add_index_commands
from glint.index.errors import GlintError, one_line
from glint.index.threads import limit_blas_threads
from glint.loadtest.cli import add_loadtest_command

__all__ = ["main"]

log = logging.getLogger("glint.serve")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors are one line, exit 2."""
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_dirs(targets: list[tuple[str, Path]]) -> None:
    """Start only when at least one directory can be served. A bad directory among good ones
    does not stop the server: its start-up load fails on its own, the other collections
    serve and ``/readyz`` names it (``degraded``). The check is the cheap one (the manifest
    and the files' sizes); checksums are verified as each index loads."""
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

    targets = [parse_index_arg(arg) for arg in args.index_dirs]
    seen: set[str] = set()
    for name, _ in targets:
        if name in seen:
            raise ValueError(f"collection name {name!r} is given twice; use NAME=DIR to rename one")
        seen.add(name)
    overrides: dict[str, Any] = {"index_dirs": list(args.index_dirs)}
    for key in ("host", "port", "workers", "log_format"):
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
    # Logging first, so that every record from here on (faiss's loader included) is JSON.
    log_config = configure_logging(settings.log_level, settings.log_format)
    _sweep(targets)
    _check_dirs(targets)  # one line and exit 1 only when no directory can be served
    host = settings.host
    if not keys.enabled and not _is_loopback(host):
        log.warning("no API keys configured: binding to 127.0.0.1 instead of %s", host)
        host = "127.0.0.1"
    elif not keys.enabled:
        log.warning("no API keys configured: serving without auth on loopback only")
    run = functools.partial(
        uvicorn.run,
        host=host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config,
        access_log=False,  # glint logs each request itself, with its id
        timeout_graceful_shutdown=10,
    )
    if settings.workers == 1:
        from .app import create_app

        run(create_app(settings.model_copy(update={"host": host})))
        return 0
    # Several processes: each worker builds its app from GLINT_* variables, so the settings
    # travel in the environment. The indices are memory-mapped, so their pages are shared.
    env = settings.model_copy(update={"host": host}).model_dump(mode="json", exclude_none=True)
    for key, value in env.items():
        text = json.dumps(value) if isinstance(value, list) else str(value)
        os.environ[f"GLINT_{key.upper()}"] = text
    run("glint.service.app:create_app_from_env", factory=True, workers=settings.workers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="glint", description="glint: compressed-index vector search")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_index_commands(sub)
    add_loadtest_command(sub)
    serve = sub.add_parser("serve", help="serve index directories over REST")
    serve.add_argument("index_dirs", nargs="+", metavar="DIR", help="DIR or NAME=DIR")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1, or GLINT_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, or GLINT_PORT)")
    serve.add_argument("--api-keys", type=Path, metavar="FILE", help="'ROLE KEY' lines")
    serve.add_argument(
        "--workers", type=int, help="worker processes sharing the indices (default 1)"
    )
    serve.add_argument(
        "--log-format", choices=("json", "text"), help="log records as JSON lines (default)"
    )
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit_blas_threads(1)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (GlintError, ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"glint: error: {message}\n")
        return 1
    except MemoryError as exc:  # numpy's says how much it could not allocate, on one line
        sys.stderr.write(f"glint: error: out of memory ({one_line(exc)})\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("glint: interrupted\n")
        return 130
    except Exception as exc:  # a bug, not the user's error: still one line, unless asked
        if args.verbose:
            log.exception("glint %s failed", args.command)
        sys.stderr.write(
            f"glint: error: unexpected {type(exc).__name__}: {one_line(exc)} "
            "(run with --verbose for the traceback)\n"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
