"""The indexer sub-commands of ``glint``: ``build``, ``search`` and ``info``.

Each ``cmd_*`` takes parsed arguments and returns an exit code; user errors are raised as
:class:`~glint.index.errors.GlintError` and turned into one line on stderr by the entry point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .api import build_index, load_index
from .errors import ConfigError, InputError
from .multivec import read_token_sets
from .payloads import read_payload_lines
from .readers import read_ids, read_vectors
from .registry import get_kind, parse_spec
from .storage import read_manifest
from .validate import check_k, check_result_size

__all__ = ["add_index_commands"]


def _progress(total: int, desc: str) -> tqdm:
    """A progress bar on a terminal; silent when stderr is piped."""
    return tqdm(total=total, desc=desc, unit="vec", disable=not sys.stderr.isatty(), leave=False)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r} is not key=value")
        params[key.strip()] = value.strip()
    return params


def cmd_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out}: already exists; pass --overwrite to replace it")
    config = parse_spec(args.index)  # a bad spec fails before any reading
    items: Any
    ids, payloads = None, None
    if get_kind(config.kind).index.multivector:
        items = read_token_sets(args.input, what="documents")
        count = items.count
    else:
        if Path(args.input).is_dir() or Path(args.input).suffix.lower() == ".npz":
            raise InputError(
                f"{args.input}: token sets (multi-vector documents) need --index muvera; "
                f"{config.kind} indexes single vectors (.npy, .fvecs, .bvecs, .hdf5, .parquet)"
            )
        data = read_vectors(args.input)
        items, ids, payloads, count = data.vectors, data.ids, data.payloads, len(data.vectors)
    ids = read_ids(args.ids, count) if args.ids else ids
    # every payload line is checked here (UTF-8, standard JSON), before the build starts
    payloads = read_payload_lines(args.payloads, count) if args.payloads else payloads
    with _progress(count, "indexing") as bar:
        index = build_index(
            items,
            args.index,
            args.metric,
            ids=ids,
            payloads=payloads,
            threads=args.threads,
            source=str(args.input),
            progress=bar.update,
        )
        bar.set_description("writing")
        index.save(out, overwrite=args.overwrite)
    print(
        json.dumps(
            {
                "out": str(out),
                "spec": index.spec,
                "metric": index.metric,
                "count": index.count,
                "dim": index.dim,
                "build_seconds": index.build_info.get("seconds"),
            }
        )
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    check_k(args.k)  # a k no machine could answer is refused before anything is loaded
    index = load_index(args.index_dir)
    queries: Any
    if index.multivector:
        queries = read_token_sets(args.queries, what="queries", dim=index.dim)
        nq = queries.count
    else:
        queries = read_vectors(args.queries, dim=index.dim, what="queries").vectors
        nq = int(queries.shape[0])
    # The answer is [nq, k], padded with -1 past the index's count (the contract of a search):
    # refuse one too large to hold rather than die of it half-way.
    check_result_size(nq, args.k, count=index.count)
    params = _parse_params(args.param)
    index.warm()  # loading or compiling the kernels is part of the load, not of the search
    started = time.perf_counter()
    result = index.search(queries, args.k, threads=args.threads, **params)
    seconds = time.perf_counter() - started
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez(tmp, ids=result.ids, scores=result.scores)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    threads = args.threads or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    )
    print(
        json.dumps(
            {
                "queries": nq,
                "k": args.k,
                "seconds": round(seconds, 6),
                "qps": round(nq / seconds, 2) if seconds > 0 else None,
                "threads": threads,
                "metric": index.metric,
                "out": str(out),
            }
        )
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.index_dir)
    index = load_index(args.index_dir, verify=not args.no_verify)
    info = index.stats()
    info.update(
        {
            "path": str(Path(args.index_dir).absolute()),
            "format_version": manifest["format_version"],
            "glint_version": manifest["glint_version"],
            "created": manifest["created"],
            "files": {name: entry["bytes"] for name, entry in manifest["files"].items()},
        }
    )
    print(json.dumps(info, indent=2))
    index.close()
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_index_commands(sub: Any) -> None:
    """Register ``build``, ``search`` and ``info`` on an argparse sub-parser collection."""
    build = sub.add_parser("build", help="build an index from a file of vectors")
    build.add_argument(
        "input",
        type=Path,
        help=".npy, .fvecs, .bvecs, .hdf5 or .parquet; for muvera a .npz or directory with "
        "tokens and offsets",
    )
    build.add_argument("--index", default="flat", metavar="SPEC", help="index spec, e.g. 'flat'")
    build.add_argument("--metric", choices=["ip", "cos", "l2"], default="ip")
    build.add_argument("--out", required=True, type=Path, help="index directory to write")
    build.add_argument("--ids", type=Path, help="external int64 ids: .npy or one per line")
    build.add_argument("--payloads", type=Path, help=".jsonl, one JSON object per vector")
    build.add_argument("--threads", type=_positive_int)
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    build.set_defaults(func=cmd_build)

    search = sub.add_parser("search", help="search an index with a batch of queries")
    search.add_argument("index_dir", type=Path, metavar="DIR")
    search.add_argument("--queries", required=True, type=Path)
    search.add_argument("--k", required=True, type=_positive_int)
    search.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    search.add_argument("--threads", type=_positive_int)
    search.add_argument("--out", required=True, type=Path, help="RESULT.npz (ids, scores)")
    search.set_defaults(func=cmd_search)

    info = sub.add_parser("info", help="describe an index directory")
    info.add_argument("index_dir", type=Path, metavar="DIR")
    info.add_argument("--no-verify", action="store_true", help="skip the checksum pass")
    info.set_defaults(func=cmd_info)
