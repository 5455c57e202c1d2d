"""The indexer sub-commands of ``glint``: ``build``, ``search`` and ``info``.

Each ``cmd_*`` takes parsed arguments and returns an exit code; user errors are raised as
:class:`~glint.index.errors.GlintError` and turned into one line on stderr by the entry point.
Warnings (one line each, ``glint: warning: ...``) are written only once a command has
succeeded, so that a failing command still ends with its one line of error.
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

from glint.wire.filters import Filter

from .api import build_index, load_index
from .errors import ConfigError, InputError, prefixed_errors
from .filters import FilterError, parse_filter
from .groundtruth import check_truth, recall_at_k, recall_check, sample_queries
from .multivec import TokenSets, read_token_sets
from .payload_index import parse_payload_index
from .payloads import read_payload_lines
from .readers import ParquetColumns, read_ground_truth, read_ids, read_vectors
from .registry import get_kind, parse_spec
from .storage import check_out_parent, read_manifest
from .validate import check_k, check_result_size

__all__ = ["add_index_commands"]

CHECK_RECALL_K = 10
# --metric omitted: the norms of up to this many rows (or tokens) are checked, and the warning
# is given when one is further than _UNIT_TOLERANCE from 1.
_NORM_SAMPLE = 10_000
_UNIT_TOLERANCE = 1e-2
_SAME_FILE = "(the --queries file)"  # the value of --gt given without a file


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


def _read_filter(text: str | None) -> Filter | None:
    """The filter of ``--filter``: its JSON, or ``@FILE`` for the JSON in FILE (None: no
    filter, or one without clauses)."""
    if text is None:
        return None
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--filter {path}: cannot read it ({exc})") from None
    try:
        return parse_filter(text)
    except RecursionError:  # the json module recurses once per level of nesting
        raise FilterError("--filter: the JSON is nested too deeply") from None
    except FilterError as exc:
        raise FilterError(f"--filter: {exc}", field=exc.field) from None


def _parquet_columns(args: argparse.Namespace) -> ParquetColumns | None:
    """The parquet column flags as a :class:`ParquetColumns`, or None if none was given."""
    if args.vector_column is None and args.id_column is None and args.payload_columns is None:
        return None
    payload = None
    if args.payload_columns is not None:  # "" means no payload columns
        payload = tuple(name.strip() for name in args.payload_columns.split(",") if name.strip())
    return ParquetColumns(
        vector_column=args.vector_column or "vector",
        id_column=args.id_column,
        payload_columns=payload,
    )


def _read_input(
    args: argparse.Namespace, multivector: bool, kind: str
) -> tuple[np.ndarray | TokenSets, np.ndarray | None, list[dict[str, Any] | None] | None]:
    """The build's items (vectors, or token sets for a multi-vector kind), ids and payloads,
    from INPUT and the flags that override what it carries."""
    columns = _parquet_columns(args)
    items: np.ndarray | TokenSets
    ids, payloads = None, None
    if multivector:
        if columns is not None:
            raise InputError(
                f"{args.input}: --vector-column, --id-column and --payload-columns are for "
                ".parquet input; token sets come from a .npz file or a directory"
            )
        items = read_token_sets(args.input, what="documents")
        count = items.count
    else:
        if Path(args.input).is_dir() or Path(args.input).suffix.lower() == ".npz":
            raise InputError(
                f"{args.input}: token sets (multi-vector documents) need --index muvera; "
                f"{kind} indexes single vectors (.npy, .fvecs, .bvecs, .hdf5, .parquet)"
            )
        data = read_vectors(args.input, columns=columns)
        items, ids, payloads, count = data.vectors, data.ids, data.payloads, len(data.vectors)
    ids = read_ids(args.ids, count) if args.ids else ids
    # every payload line is checked here (UTF-8, standard JSON), before the build starts
    payloads = read_payload_lines(args.payloads, count) if args.payloads else payloads
    return items, ids, payloads


def _check_queries(args: argparse.Namespace, items: np.ndarray | TokenSets) -> Any:
    """The queries of --check-recall N: the first N of --queries (``test`` of an ``.hdf5``),
    or N items sampled from the input; None without --check-recall."""
    n = args.check_recall
    if n is None:
        return None
    if args.queries is None:
        return sample_queries(items, n)
    if isinstance(items, TokenSets):
        sets = read_token_sets(args.queries, what="queries", dim=items.dim)
        return sets.slice(0, min(n, sets.count))
    data = read_vectors(args.queries, dim=items.shape[1], what="queries", dataset="test")
    return data.vectors[:n]


def _metric_warning(items: np.ndarray | TokenSets) -> str | None:
    """The warning for a build whose --metric was not given, if the vectors (or tokens) are
    not unit length, judged on a sample."""
    x = items.tokens if isinstance(items, TokenSets) else items
    sample = np.asarray(x[:: max(1, x.shape[0] // _NORM_SAMPLE)][:_NORM_SAMPLE], np.float64)
    norms = np.linalg.norm(sample, axis=1)
    if np.abs(norms - 1.0).max() <= _UNIT_TOLERANCE:
        return None
    return (
        "glint: warning: --metric not given, using ip, but the vectors are not unit length "
        f"(norms {norms.min():.3g} to {norms.max():.3g} in a sample): pass --metric ip to keep "
        "it, cos to normalise, or l2"
    )


def cmd_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out}: already exists; pass --overwrite to replace it")
    check_out_parent(out)  # a place the index cannot go is refused before the build, not after
    if args.queries is not None and args.check_recall is None:
        raise ConfigError("--queries gives the queries of --check-recall N; pass both")
    config = parse_spec(args.index)  # a bad spec fails before any reading
    payload_index = parse_payload_index(args.payload_index)  # and a bad --payload-index
    multivector = get_kind(config.kind).index.multivector
    items, ids, payloads = _read_input(args, multivector, config.kind)
    queries = _check_queries(args, items)  # read (and checked) before the build, not after
    count = len(items)
    with _progress(count, "indexing") as bar:
        index = build_index(
            items,
            args.index,
            args.metric or "ip",
            ids=ids,
            payloads=payloads,
            payload_index=payload_index,
            threads=args.threads,
            source=str(args.input),
            progress=bar.update,
        )
        bar.set_description("writing")
        index.save(out, overwrite=args.overwrite)
    summary: dict[str, Any] = {
        "out": str(out),
        "spec": index.spec,
        "metric": index.metric,
        "count": index.count,
        "dim": index.dim,
        "build_seconds": index.build_info.get("seconds"),
    }
    if index.payload_index:
        summary["payload_index"] = index.payload_index
    if queries is not None:
        k = min(CHECK_RECALL_K, index.count)
        recall = recall_check(index, items, queries, k=k, threads=args.threads)
        summary["check_recall"] = {
            "queries": len(queries),
            "k": k,
            "recall": recall,
            "params": "defaults",
        }
    # written last, so that a build that fails ends with its one line of error alone
    warning = _metric_warning(items) if args.metric is None else None
    if warning is not None:
        sys.stderr.write(warning + "\n")
    print(json.dumps(summary))
    return 0


def _ground_truth(args: argparse.Namespace, nq: int) -> np.ndarray | None:
    """The --gt neighbours, checked against the search's shape, or None without --gt."""
    if args.gt is None:
        return None
    path = args.queries if args.gt == _SAME_FILE else Path(args.gt)
    if args.gt == _SAME_FILE and path.suffix.lower() not in (".hdf5", ".h5"):
        raise ConfigError(
            f"--gt without a file reads the 'neighbors' of an .hdf5 --queries file, and "
            f"{path} is not one: give --gt FILE (.ivecs, .npy or .hdf5)"
        )
    truth = read_ground_truth(path)
    with prefixed_errors(str(path)):
        return check_truth(truth, nq, args.k)


def _check_truth_ids(truth: np.ndarray, ids: np.ndarray) -> None:
    """A recall of 0 because the ground truth holds row numbers and the index other ids says
    so, rather than report a recall that only looks bad."""
    if not np.isin(truth[truth >= 0], ids).any():
        raise InputError(
            "--gt: none of its neighbours is an id of this index, which was built with --ids: "
            "ground-truth files (ann-benchmarks .hdf5, .ivecs) hold row numbers of the base "
            "file; search an index built from it without --ids"
        )


def cmd_search(args: argparse.Namespace) -> int:
    check_k(args.k)  # a k no machine could answer is refused before anything is loaded
    flt = _read_filter(args.filter)  # and so is a filter that is no filter
    index = load_index(args.index_dir)
    queries: Any
    if index.multivector:
        queries = read_token_sets(args.queries, what="queries", dim=index.dim)
        nq = queries.count
    else:
        data = read_vectors(args.queries, dim=index.dim, what="queries", dataset="test")
        queries = data.vectors
        nq = int(queries.shape[0])
    # The answer is [nq, k], padded with -1 past the index's count (the contract of a search):
    # refuse one too large to hold rather than die of it half-way.
    check_result_size(nq, args.k, count=index.count)
    truth = _ground_truth(args, nq)
    params = _parse_params(args.param)
    # the filter is compiled before the warm-up, so that one this index cannot apply (a field
    # without a payload index) fails at once; the time it takes counts as the search's
    started = time.perf_counter()
    allowed = index.allowed_rows(flt) if flt is not None else None
    filtering = time.perf_counter() - started
    index.warm()  # loading or compiling the kernels is part of the load, not of the search
    started = time.perf_counter()
    result = index.search(queries, args.k, filter=allowed, threads=args.threads, **params)
    seconds = time.perf_counter() - started + filtering
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
    line = {
        "queries": nq,
        "k": args.k,
        "seconds": round(seconds, 6),
        "qps": round(nq / seconds, 2) if seconds > 0 else None,
        "threads": threads,
        "metric": index.metric,
        "out": str(out),
    }
    if allowed is not None:
        line["filter_allowed"] = allowed.count  # how many points pass the filter
    if truth is not None:
        line["recall"] = recall_at_k(result.ids, truth, args.k)
        line["recall_at"] = args.k
        if not line["recall"] and index.ids is not None:
            _check_truth_ids(truth[:, : args.k], index.ids)
    print(json.dumps(line))
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
        help=".npy, .fvecs, .bvecs, .hdf5 (ann-benchmarks: the 'train' dataset) or .parquet; "
        "for muvera a .npz or directory with tokens and offsets",
    )
    build.add_argument("--index", default="flat", metavar="SPEC", help="index spec, e.g. 'flat'")
    build.add_argument(
        "--metric",
        choices=["ip", "cos", "l2"],
        help="ip (inner product), cos or l2 (default ip, with a warning when the vectors are "
        "not unit length)",
    )
    build.add_argument("--out", required=True, type=Path, help="index directory to write")
    build.add_argument(
        "--ids", type=Path, help="external int64 ids: .npy or one per line (overrides parquet's)"
    )
    build.add_argument(
        "--payloads", type=Path, help=".jsonl, one JSON object per vector (overrides parquet's)"
    )
    build.add_argument(
        "--vector-column", metavar="NAME", help="parquet: the list column of vectors (vector)"
    )
    build.add_argument(
        "--id-column",
        metavar="NAME",
        help="parquet: the integer column of ids (id, if there is one; '' for none)",
    )
    build.add_argument(
        "--payload-columns",
        metavar="A,B",
        help="parquet: the columns that become the payload (default every other column; '' "
        "for none)",
    )
    build.add_argument(
        "--check-recall",
        type=_positive_int,
        metavar="N",
        help="after the build, search N base vectors sampled at random (or the first N of "
        "--queries) at the default search parameters, compare with an exact search, and add "
        f"the recall@{CHECK_RECALL_K} to the JSON line ('check_recall')",
    )
    build.add_argument(
        "--queries",
        type=Path,
        metavar="FILE",
        help="the queries of --check-recall (.npy, .fvecs, .hdf5 'test', ...; .npz for muvera)",
    )
    build.add_argument(
        "--payload-index",
        action="append",
        default=[],
        metavar="FIELD:TYPE",
        help="index payload field FIELD (a dotted path for nested fields) for filters, TYPE "
        "one of keyword, integer, float, bool (repeatable)",
    )
    build.add_argument("--threads", type=_positive_int)
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    build.set_defaults(func=cmd_build)

    search = sub.add_parser("search", help="search an index with a batch of queries")
    search.add_argument("index_dir", type=Path, metavar="DIR")
    search.add_argument(
        "--queries",
        required=True,
        type=Path,
        help=".npy, .fvecs, .bvecs, .hdf5 (ann-benchmarks: the 'test' dataset) or .parquet; "
        ".npz or a directory for muvera",
    )
    search.add_argument("--k", required=True, type=_positive_int)
    search.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    search.add_argument(
        "--filter",
        metavar="JSON",
        help='keep only the points whose payload passes this filter, e.g. \'{"must": [{"key": '
        '"lang", "match": {"value": "en"}}]}\' (or @FILE for the JSON in FILE); its fields '
        "need a payload index (build --payload-index)",
    )
    search.add_argument("--threads", type=_positive_int)
    search.add_argument("--out", required=True, type=Path, help="RESULT.npz (ids, scores)")
    search.add_argument(
        "--gt",
        nargs="?",
        const=_SAME_FILE,
        metavar="FILE",
        help="true neighbours, one row per query, best first (.ivecs, .npy or .hdf5 "
        "'neighbors'; --gt alone: the 'neighbors' of the .hdf5 --queries file): adds 'recall' "
        "(the share of the true k nearest that were found) and 'recall_at' (k) to the JSON "
        "line. They are compared with the ids the index returns, which are the row numbers of "
        "the base file (as in ann-benchmarks files) when the index was built without ids",
    )
    search.set_defaults(func=cmd_search)

    info = sub.add_parser("info", help="describe an index directory")
    info.add_argument("index_dir", type=Path, metavar="DIR")
    info.add_argument("--no-verify", action="store_true", help="skip the checksum pass")
    info.set_defaults(func=cmd_info)
