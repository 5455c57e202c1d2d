"""The ``glint loadtest`` sub-command.

Only argparse and the standard library are imported here, so registering the command costs
nothing; the runner (httpx, numpy) is imported when the command runs, matplotlib only for
``--png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_loadtest_command", "cmd_loadtest", "parse_filter_arg", "parse_param"]

log = logging.getLogger("glint.loadtest")


def _int(text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        need = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise argparse.ArgumentTypeError(f"{need}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int(text, minimum=1)


def _non_negative_int(text: str) -> int:
    return _int(text, minimum=0)


def _seconds(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(
            f"must be {'non-negative' if allow_zero else 'positive'}, got {text}"
        )
    return value


def _positive_seconds(text: str) -> float:
    return _seconds(text, allow_zero=False)


def _non_negative_seconds(text: str) -> float:
    return _seconds(text, allow_zero=True)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def parse_param(pair: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value as an int or a float when it reads as one."""
    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param {pair!r} is not KEY=VALUE")
    return key.strip(), _number(value.strip())


def parse_filter_arg(text: str) -> Any:
    """The JSON of ``--filter``: given inline, or ``@FILE`` for the JSON in FILE (a ValueError
    says what is wrong; whether it is a filter, :class:`LoadConfig` checks)."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--filter {text}: cannot read it ({exc})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = exc if isinstance(exc, ValueError) else "nested too deeply"
        raise ValueError(f"--filter is not valid JSON: {detail}") from None


def _usage(message: str) -> int:
    sys.stderr.write(f"glint loadtest: error: {message}\n")
    return 2


def _error(message: str) -> int:
    sys.stderr.write(f"glint: error: {message}\n")
    return 1


def cmd_loadtest(args: argparse.Namespace) -> int:
    from .errors import LoadTestError, UsageError
    from .report import write_json, write_png
    from .runner import LoadConfig, ReloadPlan, run_load

    try:
        params = dict(parse_param(pair) for pair in args.param)
        flt = parse_filter_arg(args.filter) if args.filter is not None else None
    except ValueError as exc:
        return _usage(str(exc))
    if args.batch is not None and args.mode != "batch":
        return _usage("--batch needs --mode batch")
    if args.reload_path and not args.reload_at:
        return _usage("--reload-path needs --reload-at")
    if args.reload_at and not args.reload_path:
        return _usage("--reload-at needs --reload-path DIR")
    if args.reload_at and len(args.reload_path) not in (1, len(args.reload_at)):
        return _usage("give one --reload-path, or one per --reload-at")
    paths = (
        args.reload_path * len(args.reload_at) if len(args.reload_path) == 1 else args.reload_path
    )
    api_key = args.api_key or os.environ.get("GLINT_API_KEY") or None
    try:
        reloads = tuple(ReloadPlan(at, p) for at, p in zip(args.reload_at, paths, strict=True))
        config = LoadConfig(
            url=args.url,
            collection=args.collection,
            mode=args.mode,
            transport=args.transport,
            batch=args.batch or 32,
            k=args.k,
            params=params,
            filter=flt,
            concurrency=args.concurrency,
            count=args.count,
            duration=args.duration,
            warmup=args.warmup,
            queries=args.queries,
            seed=args.seed,
            api_key=api_key,
            admin_key=args.admin_key or os.environ.get("GLINT_ADMIN_KEY") or None,
            timeout=args.timeout,
            reloads=reloads,
        )
    except UsageError as exc:
        return _usage(str(exc))
    bound = f"{config.count} requests" if config.count else f"{config.duration} s"
    log.info(
        "loadtest: %s to %s/%s, %s mode, concurrency %d",
        bound,
        config.url,
        config.collection,
        config.mode,
        config.concurrency,
    )
    try:
        report = run_load(config)
    except LoadTestError as exc:
        return _error(str(exc).splitlines()[0])
    data = report.to_dict()
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()
    try:
        if args.out is not None:
            write_json(data, args.out)
        if args.png is not None:
            write_png(data, args.png)
    except (LoadTestError, OSError) as exc:
        return _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    failed = False
    if report.errors["total"]:
        kinds = ", ".join(f"{k} {n}" for k, n in report.errors["by_kind"].items())
        sys.stderr.write(
            f"glint: loadtest: {report.errors['total']} of {report.requests} requests failed "
            f"({kinds})\n"
        )
        failed = True
    for event in report.events:
        if not event["ok"]:
            sys.stderr.write(
                f"glint: loadtest: {event['kind']} at {event['at_s']} s failed: "
                f"{event['message']}\n"
            )
            failed = True
    return 1 if failed else 0


_DESCRIPTION = """\
Send search requests to a running glint server from CONCURRENCY async workers sharing a
keep-alive connection pool, and report throughput, latency percentiles, errors by kind and a
per-second timeline as one JSON document on stdout. Exit status: 0 when every request
succeeded, 1 when any failed (or a reload did), 2 for bad options."""


def add_loadtest_command(sub: Any) -> None:
    """Register ``loadtest`` on an argparse sub-parser collection."""
    p = sub.add_parser(
        "loadtest",
        help="load-test a running glint server",
        description=_DESCRIPTION,
    )
    p.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--collection", required=True, metavar="NAME")
    bound = p.add_mutually_exclusive_group()
    bound.add_argument(
        "--count", type=_positive_int, metavar="N", help="measured requests (default 1000)"
    )
    bound.add_argument(
        "--duration", type=_positive_seconds, metavar="SECONDS", help="run for this long instead"
    )
    p.add_argument(
        "--warmup", type=_non_negative_int, default=0, metavar="N", help="unrecorded requests first"
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="C",
        help="workers and connections (default 8)",
    )
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    p.add_argument(
        "--batch", type=_positive_int, metavar="B", help="queries per batch request (default 32)"
    )
    p.add_argument(
        "--transport",
        choices=["json", "binary"],
        default="json",
        help="batch body: JSON, or .npy/.npz in and .npz out",
    )
    p.add_argument("--k", type=_positive_int, default=10, help="hits per query (default 10)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="search parameter (repeatable); numbers are sent as numbers",
    )
    p.add_argument(
        "--filter",
        metavar="JSON",
        help='a filter sent with every search, e.g. \'{"must": [{"key": "lang", "match": '
        '{"value": "en"}}]}\' (or @FILE for the JSON in FILE)',
    )
    p.add_argument(
        "--queries",
        type=Path,
        metavar="FILE",
        help="a float32 [n, dim] .npy, or a .npz with tokens and offsets (multi-vector); "
        "default: random unit vectors",
    )
    p.add_argument("--seed", type=int, default=0, help="for the random queries (default 0)")
    p.add_argument("--api-key", metavar="KEY", help="bearer key (default: $GLINT_API_KEY)")
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="per request and phase: connect, send, wait for the answer (default 30)",
    )
    p.add_argument(
        "--reload-at",
        type=_non_negative_seconds,
        action="append",
        default=[],
        metavar="SECONDS",
        help="reload the collection this long after the measured phase began (repeatable)",
    )
    p.add_argument(
        "--reload-path", action="append", default=[], metavar="DIR", help="index to reload from"
    )
    p.add_argument(
        "--admin-key",
        metavar="KEY",
        help="for reloads (default: $GLINT_ADMIN_KEY, else the API key)",
    )
    p.add_argument("--out", type=Path, metavar="FILE.json", help="also write the report here")
    p.add_argument("--png", type=Path, metavar="FILE.png", help="draw the run (needs matplotlib)")
    p.set_defaults(func=cmd_loadtest)
