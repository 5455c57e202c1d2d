"""The ``glint-bench`` command: ``run`` a benchmark, ``report`` its results.

glint-bench run --dataset DIR --queries id|ood [--configs FILE] [--suite hnsw] [--spec SPEC]
                [--peers faiss-flat,faiss-hnsw,faiss-hnsw-sq8,hnswlib,svs] [--k 10] [--nq N]
                [--threads-all N] [--repeats 3] [--knob-values 10,16,...]
                [--knob-sweep nprobe=8,16,...] [--out FILE]
                [--cache DIR] [--rebuild] [--svs-python PATH] [--in-process]
glint-bench report RESULTS.json [...] --md docs/benchmarks.md
                --png 'docs/bench-{dataset}-{queries}.png'
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from datetime import datetime
from pathlib import Path

from .machine import cpu_count
from .runner import DEFAULT_PEERS, SUITES, RunOptions, run
from .schema import Row
from .systems import PEERS

__all__ = ["main"]

log = logging.getLogger(__name__)


def _read_configs(path: Path) -> list[str]:
    """One config per line (a glint spec, optionally ``;key=value`` search parameters, or a
    peer name); blank lines and ``#`` comments are skipped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _peers(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip() and p.strip() != "none"]
    unknown = [p for p in names if p != "svs" and p.partition(":")[0] not in PEERS]
    if unknown:
        valid = ", ".join([*PEERS, "svs"])
        raise argparse.ArgumentTypeError(f"unknown peers {unknown}; valid: {valid}")
    return names


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


def _sweep(text: str) -> tuple[str, tuple[int, ...]]:
    knob, eq, values = text.partition("=")
    if not eq or not knob.strip():
        raise argparse.ArgumentTypeError(f"expected KNOB=v1,v2,...: {text!r}")
    return knob.strip(), _ints(values)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glint-bench", description="glint's benchmark harness (shared/BENCHMARKS.md)."
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="build and sweep configs and peers; write a results file")
    r.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    r.add_argument("--dataset", type=Path, required=True, help="a dataset directory")
    r.add_argument("--queries", default="id", help="query set: id or ood (default id)")
    r.add_argument("--configs", type=Path, help="file with one config per line")
    r.add_argument("--suite", choices=sorted(SUITES), action="append", help="named configs")
    r.add_argument("--spec", action="append", default=[], help="a glint config (repeatable)")
    r.add_argument(
        "--peers",
        type=_peers,
        default=list(DEFAULT_PEERS),
        help=f"comma-separated peers or 'none' (default {','.join(DEFAULT_PEERS)})",
    )
    r.add_argument("--k", type=int, default=10, help="results per query (>= 10)")
    r.add_argument("--nq", type=int, help="use the first N queries (default all)")
    r.add_argument("--threads-all", type=int, default=cpu_count(), help="the all-cores count")
    r.add_argument("--repeats", type=int, default=3, help="timed batch runs (median)")
    r.add_argument("--knob-values", type=_ints, help="override the search-knob sweep")
    r.add_argument(
        "--knob-sweep",
        type=_sweep,
        action="append",
        default=[],
        help="KNOB=v1,v2,...: the sweep of one knob (e.g. nprobe), over --knob-values",
    )
    r.add_argument("--metric", choices=["ip", "l2", "cos"], help="override meta.json's metric")
    r.add_argument("--out", type=Path, help="results file (default bench-results/...json)")
    r.add_argument("--cache", type=Path, help="directory caching builds across runs")
    r.add_argument("--rebuild", action="store_true", help="ignore cached builds")
    r.add_argument("--svs-python", help="python of the SVS virtualenv (or GLINT_SVS_PYTHON)")
    r.add_argument("--svs-args", default="", help="extra arguments for svs_runner.py (quoted)")
    r.add_argument(
        "--in-process", action="store_true", help="no worker subprocesses (RSS less clean)"
    )

    mv = sub.add_parser("multivec", help="multi-vector (muvera) run on a multivec dataset")
    mv.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    mv.add_argument("--dataset", type=Path, required=True, help="a multivec dataset directory")
    mv.add_argument("--spec", action="append", default=[], help="a glint muvera spec (repeatable)")
    mv.add_argument("--nq", type=int, help="use the first N queries (default all)")
    mv.add_argument("--nq-exact", type=int, default=200, help="queries timed for brute force")
    mv.add_argument("--candidates", type=_ints, help="the candidates sweep")
    mv.add_argument("--ef-factor", type=float, default=1.0, help="ef_search = factor x candidates")
    mv.add_argument("--memory-candidates", type=int, default=500, help="memory table's point")
    mv.add_argument("--k-sim", type=int, default=4)
    mv.add_argument("--dim-proj", type=int, default=16)
    mv.add_argument("--r-reps", type=int, default=10)
    mv.add_argument("--seeds", type=_ints, default=(1, 2, 3), help="FDE seeds compared")
    mv.add_argument("--no-peer", action="store_true", help="skip muvera-fde")
    mv.add_argument("--repeats", type=int, default=3, help="timed batch runs (median)")
    mv.add_argument("--threads-all", type=int, default=cpu_count(), help="the all-cores count")
    mv.add_argument("--out", type=Path, required=True, help="results JSON")
    mv.add_argument("--md", type=Path, help="write the markdown section here")
    mv.add_argument("--png", type=Path, help="write the recall/QPS plot here")

    sv = sub.add_parser("service", help="in process vs through `glint serve` (REST, load run)")
    sv.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sv.add_argument("--dataset", type=Path, required=True, help="a dense dataset directory")
    sv.add_argument("--spec", default="hnsw:m=32,ef_construction=200,storage=lvq4x8")
    sv.add_argument("--index", type=Path, help="serve this index directory instead of --spec")
    sv.add_argument("--workdir", type=Path, default=Path("~/.cache/glint-bench/service"))
    sv.add_argument("--queries", default="id", help="query set: id or ood")
    sv.add_argument("--nq", type=int, default=1000, help="queries used")
    sv.add_argument("--param", action="append", default=[], help="search KEY=VALUE")
    sv.add_argument("--repeats", type=int, default=5, help="timed batch runs (median)")
    sv.add_argument("--load-seconds", type=float, default=60.0)
    sv.add_argument("--load-concurrency", type=int, default=32)
    sv.add_argument("--workers", type=int, default=2, help="workers for the memory table")
    sv.add_argument("--out", type=Path, required=True, help="results JSON")
    sv.add_argument("--md", type=Path, help="write the markdown section here")
    sv.add_argument("--png", type=Path, help="write the load run's timeline here")

    rep = sub.add_parser("report", help="results files -> markdown section(s) and PNG(s)")
    rep.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    rep.add_argument("results", type=Path, nargs="+")
    rep.add_argument("--md", type=Path, help="markdown file whose sections are written")
    rep.add_argument(
        "--section",
        help="a comparison's own name: its sections sit beside the main table of the same "
        "dataset and queries (markers bench:NAME:DATASET:QUERIES) instead of replacing it",
    )
    rep.add_argument(
        "--png",
        help="PNG path, one plot per (dataset, queries): {dataset} and {queries} are filled in "
        "and appended when missing (docs/bench.png -> docs/bench-DATASET-QUERIES.png)",
    )
    return p


def _progress(row: Row) -> None:
    knob = f"{row['knob']}={row['knob_value']}" if row["knob"] else "-"
    print(
        f"[{row['system']}] {row['config']} {knob} recall={row['recall_at_10']:.4f} "
        f"qps1={row['qps_1t']:,.0f} qps{row['threads_all']}={row['qps_all']:,.0f} "
        f"p50={row['p50_ms']:.3f}ms p99={row['p99_ms']:.3f}ms",
        file=sys.stderr,
        flush=True,
    )


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    configs: list[str] = []
    if args.configs is not None:
        configs += _read_configs(args.configs)
    for suite in args.suite or []:
        configs += SUITES[suite]
    configs += args.spec
    if args.configs is None and not args.suite and not args.spec:
        configs += SUITES["hnsw"]
    configs += [p for p in args.peers if p != "svs"]
    if args.k < 10:
        print("glint-bench: --k must be >= 10 (recall@10)", file=sys.stderr)
        return 2
    out = args.out
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("bench-results") / f"{args.dataset.name}-{args.queries}-{stamp}.json"
    options = RunOptions(
        dataset=args.dataset,
        queries=args.queries,
        configs=configs,
        svs="svs" in args.peers,
        k=args.k,
        nq=args.nq,
        repeats=args.repeats,
        threads_all=args.threads_all,
        knob_values=args.knob_values,
        knob_sweeps=dict(args.knob_sweep),
        cache=args.cache,
        rebuild=args.rebuild,
        isolate=not args.in_process,
        svs_python=args.svs_python,
        svs_args=args.svs_args,
        metric=args.metric,
        out=out,
        command=shlex.join(["glint-bench", *argv]),
    )
    results = run(options, progress=_progress)
    for note in results["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(out)
    return 0 if results["rows"] else 1


def _multivec(args: argparse.Namespace, argv: list[str]) -> int:
    from .multivec import MultivecOptions, markdown, plot, run_multivec

    opts = MultivecOptions(
        dataset=args.dataset,
        specs=args.spec or ["muvera"],
        out=args.out,
        nq=args.nq,
        nq_exact=args.nq_exact,
        ef_factor=args.ef_factor,
        repeats=args.repeats,
        threads_all=args.threads_all,
        k_sim=args.k_sim,
        dim_proj=args.dim_proj,
        r_reps=args.r_reps,
        seeds=tuple(args.seeds),
        peer=not args.no_peer,
        memory_candidates=args.memory_candidates,
        command=shlex.join(["glint-bench", *argv]),
    )
    if args.candidates:
        opts.candidates = tuple(args.candidates)
    results = run_multivec(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.md is not None:
        args.md.write_text(markdown(results))
    if args.png is not None:
        plot(results, args.png)
    print(args.out)
    return 0


def _service(args: argparse.Namespace, argv: list[str]) -> int:
    from glint.loadtest.cli import parse_param

    from .service import ServiceOptions, markdown, run_service, write_results

    params = dict(parse_param(item) for item in args.param)
    opts = ServiceOptions(
        dataset=args.dataset,
        out=args.out,
        spec=args.spec,
        index=args.index,
        workdir=args.workdir,
        queries=args.queries,
        nq=args.nq,
        params=params or {"ef_search": 64},
        repeats=args.repeats,
        load_seconds=args.load_seconds,
        load_concurrency=args.load_concurrency,
        workers=args.workers,
        png=args.png,
        command=shlex.join(["glint-bench", *argv]),
    )
    results = run_service(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
    write_results(results, args.out)
    if args.md is not None:
        args.md.write_text(markdown(results))
    print(args.out)
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import report

    if args.md is None and args.png is None:
        print("glint-bench report: give --md and/or --png", file=sys.stderr)
        return 2
    try:
        written = report(args.results, args.md, args.png, args.section)
    except ImportError as exc:
        print(f"glint-bench report: {exc} (install the bench extra: .[bench])", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    logging.getLogger("glint.bench.runner").setLevel(logging.INFO)  # build/cache progress
    try:
        if args.command == "run":
            return _run(args, argv)
        if args.command == "multivec":
            return _multivec(args, argv)
        if args.command == "service":
            return _service(args, argv)
        return _report(args)
    except (OSError, ValueError) as exc:
        print(f"glint-bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
