"""Filtered search: glint against faiss with an ID selector, at several selectivities.

    python -m glint.bench.filtered --dataset DIR [--queries id,ood] [--nq 1000] [--out F.jsonl]
    python -m glint.bench.filtered --report F.jsonl      # the markdown table of a results file

The attributes are attached here (the recipe is this file, seeded):

- ``u50``, ``u10``, ``u1``, ``u01``: a uniformly random keyword per row, ``"yes"`` with
  probability 50%, 10%, 1% and 0.1%; the filter is ``match yes``, shared by the whole batch.
- ``cluster``: the k-means cluster of each vector (``--clusters`` of them, about 1% each), so a
  filter selects a region of the space. Each query is given the cluster whose centroid is
  nearest to it (``near``) or one drawn from the half of the centroids furthest from it
  (``far``); queries sharing a filter are searched as one batch.

Ground truth is an exact search over the allowed rows. Systems, one thread each, in the same
run: glint ``--spec`` (planner on ``auto``, and each arm forced), faiss ``IndexHNSWFlat``
(M=32, efConstruction=200) with ``IDSelectorBitmap`` through ``SearchParametersHNSW``, and
faiss ``IndexFlatIP`` with the same selector (exact). Each system's knob is swept; the table
gives QPS at recall@10 0.95 read off each curve (:func:`~glint.bench.oppoints.qps_at`), the
arm the planner chose there, filter compilation time and the payload index's bytes per vector.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glint.index import build_index, load_index
from glint.index.base import AllowedRows, Index
from glint.index.threads import limit_blas_threads

from .data import load_dataset
from .machine import machine_line
from .oppoints import qps_at

UNIFORM = {"u50": 0.5, "u10": 0.1, "u1": 0.01, "u01": 0.001}
GLINT_EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
FAISS_EFS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
TARGET = 0.95
COMPILE_REPEATS = 5
SEED = 20261206


@dataclass
class Case:
    """One filter setting: its name, selectivity, and groups of (query rows, filter)."""

    name: str
    selectivity: float
    groups: list[tuple[np.ndarray, dict[str, Any]]]


def attributes(base: np.ndarray, clusters: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The payloads of the benchmark and the k-means centroids behind ``cluster``."""
    import faiss

    rng = np.random.default_rng(SEED)
    n = base.shape[0]
    kmeans = faiss.Kmeans(base.shape[1], clusters, niter=20, seed=SEED, spherical=True)
    kmeans.train(base[rng.choice(n, min(n, clusters * 256), replace=False)])
    _, assign = kmeans.index.search(base, 1)
    draws = {name: rng.random(n) < p for name, p in UNIFORM.items()}
    payloads = [
        {
            **{name: "yes" if draws[name][i] else "no" for name in UNIFORM},
            "cluster": f"c{int(assign[i, 0])}",
        }
        for i in range(n)
    ]
    return payloads, kmeans.centroids


def cases(payloads: list[dict[str, Any]], queries: np.ndarray, centroids: np.ndarray) -> list[Case]:
    n = len(payloads)
    out = []
    everyone = np.arange(len(queries))
    for name in UNIFORM:
        share = sum(p[name] == "yes" for p in payloads) / n
        flt = {"must": [{"key": name, "match": {"value": "yes"}}]}
        out.append(Case(f"uniform {share:.1%}", share, [(everyone, flt)]))
    sims = queries @ centroids.T
    rng = np.random.default_rng(SEED + 1)
    far_half = np.argsort(sims, axis=1)[:, : centroids.shape[0] // 2]
    targets = {
        "near": sims.argmax(axis=1),
        "far": far_half[np.arange(len(queries)), rng.integers(0, far_half.shape[1], len(queries))],
    }
    sizes = np.bincount([int(p["cluster"][1:]) for p in payloads], minlength=len(centroids))
    for name, target in targets.items():
        groups = []
        for c in np.unique(target):
            flt = {"must": [{"key": "cluster", "match": {"value": f"c{c}"}}]}
            groups.append((np.flatnonzero(target == c), flt))
        share = float(np.mean(sizes[target])) / n
        out.append(Case(f"cluster {name} {share:.1%}", share, groups))
    return out


def exact_truth(base: np.ndarray, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    scores = queries @ base[rows].T
    top = np.argsort(-scores, axis=1)[:, :10]
    return rows[top]


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(len(np.intersect1d(a[a >= 0], b)) for a, b in zip(ids, truth, strict=True))
    return hits / (k * len(truth))


def _timed(run: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float]:
    best, ids = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        ids = run()
        best = min(best, time.perf_counter() - started)
    assert ids is not None
    return ids, best


class Systems:
    """The searchers of one run, each answering ``(queries, allowed rows, knob) -> ids``."""

    def __init__(self, index: Index[Any], base: np.ndarray, workdir: Path) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = index
        self.n, dim = base.shape
        path = workdir / "faiss-hnsw32.index"
        if path.exists():
            self.hnsw = faiss.read_index(str(path))
        else:
            faiss.omp_set_num_threads(2)
            self.hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            self.hnsw.hnsw.efConstruction = 200
            self.hnsw.add(base)
            faiss.write_index(self.hnsw, str(path))
            faiss.omp_set_num_threads(1)
        self.flat = faiss.IndexFlatIP(dim)
        self.flat.add(base)

    def selector(self, allowed: AllowedRows) -> tuple[Any, np.ndarray]:
        import faiss

        bits = np.packbits(allowed.mask.view(np.bool_), bitorder="little")
        return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits  # n: bytes

    def glint(self, arm: str) -> Callable[[np.ndarray, AllowedRows, int], np.ndarray]:
        def run(q: np.ndarray, allowed: AllowedRows, ef: int) -> np.ndarray:
            params = {"ef_search": ef, "filter_arm": arm}
            return self.index.search(q, 10, params=params, filter=allowed, threads=1).ids

        return run

    def faiss_hnsw(self, q: np.ndarray, allowed: AllowedRows, ef: int) -> np.ndarray:
        import faiss

        sel, bits = self.selector(allowed)
        params = faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
        _, ids = self.hnsw.search(q, 10, params=params)
        del bits
        return ids

    def faiss_flat(self, q: np.ndarray, allowed: AllowedRows, ef: int) -> np.ndarray:
        import faiss

        sel, bits = self.selector(allowed)
        _, ids = self.flat.search(q, 10, params=faiss.SearchParameters(sel=sel))
        del bits
        return ids


def sweep(
    run: Callable[[np.ndarray, AllowedRows, int], np.ndarray],
    knobs: Sequence[int],
    groups: list[tuple[np.ndarray, AllowedRows, np.ndarray]],
    queries: np.ndarray,
    repeats: int,
) -> list[dict[str, float]]:
    """(knob, recall, qps) along the knob, stopping once recall passes 0.995."""
    points = []
    total = sum(len(rows) for rows, _, _ in groups)
    for knob in knobs:
        seconds, hits = 0.0, 0.0
        for rows, allowed, truth in groups:
            q = queries[rows]
            ids, spent = _timed(lambda q=q, a=allowed, k=knob: run(q, a, k), repeats)
            seconds += spent
            hits += recall(ids, truth) * len(rows)
        points.append({"knob": knob, "recall": hits / total, "qps": total / seconds})
        if hits / total >= 0.995:
            break
    return points


def _cached_index(
    args: argparse.Namespace, base: np.ndarray, metric: str, payloads: list[Any]
) -> Index[Any]:
    key = hashlib.sha256(f"{args.dataset}|{args.spec}|{args.clusters}|{SEED}".encode()).hexdigest()[
        :12
    ]
    path = args.workdir / f"glint-{key}"
    if not path.exists():
        fields = {**dict.fromkeys(UNIFORM, "keyword"), "cluster": "keyword"}
        started = time.perf_counter()
        built = build_index(
            base,
            args.spec,
            metric,
            payloads=payloads,
            payload_index=fields,
            threads=args.build_threads,
        )
        print(f"built {args.spec} in {time.perf_counter() - started:.1f}s", flush=True)
        built.save(path)
    return load_index(path)


def _qps(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None:
        return "—"
    return "∞ (peer never reaches 0.95)" if b is None else f"{a / b:.1f}x"


def report(path: Path) -> str:
    """The markdown table of a results file (one row per query set and filter)."""
    lines = [
        "| queries | filter (selectivity) | planner | glint | scan arm | graph arm | faiss HNSW "
        "| faiss flat | glint / faiss HNSW | glint / better arm | compile µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for text in path.read_text().splitlines():
        r = json.loads(text)
        arms = [v for v in (r["glint-scan_qps95"], r["glint-graph_qps95"]) if v is not None]
        best_arm = max(arms) if arms else None
        lines.append(
            f"| {r['queries']} | {r['case']} | {r['planner_arm']} | {_qps(r['glint_qps95'])} "
            f"| {_qps(r['glint-scan_qps95'])} | {_qps(r['glint-graph_qps95'])} "
            f"| {_qps(r['faiss-hnsw_qps95'])} | {_qps(r['faiss-flat_qps95'])} "
            f"| {_ratio(r['glint_qps95'], r['faiss-hnsw_qps95'])} "
            f"| {_ratio(r['glint_qps95'], best_arm)} | {r['compile_us']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        import sys

        argv = sys.argv[1:]
    if argv[:1] == ["--report"]:
        for name in argv[1:]:
            print(report(Path(name)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m glint.bench.filtered")
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--queries", default="id,ood")
    parser.add_argument("--nq", type=int, default=1000)
    parser.add_argument("--spec", default="hnsw:storage=lvq4x8")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("~/.cache/glint-bench/filtered"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", help="case names to run, comma-separated prefixes")
    args = parser.parse_args(argv)
    args.workdir = args.workdir.expanduser() / Path(args.dataset).expanduser().name
    args.workdir.mkdir(parents=True, exist_ok=True)
    limit_blas_threads(1)
    first = load_dataset(args.dataset, "id", nq=args.nq)
    base, metric = first.base, first.metric
    payloads, centroids = attributes(base, args.clusters)
    index = _cached_index(args, base, metric, payloads)
    systems = Systems(index, base, args.workdir)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115  (closed at exit)
    print(machine_line())
    print(
        f"payload index: {index.payload_index_bytes / index.count:.2f} bytes per vector"
        if index.payload_index
        else "no payload index"
    )
    for qname in args.queries.split(","):
        queries = load_dataset(args.dataset, qname, nq=args.nq).queries
        for case in cases(payloads, queries, centroids):
            if args.only and not any(case.name.startswith(p) for p in args.only.split(",")):
                continue
            groups = []
            compile_s = 0.0
            index.allowed_rows(case.groups[0][1])  # the first call may load compiled code
            for rows, flt in case.groups:
                started = time.perf_counter()
                for _ in range(COMPILE_REPEATS):
                    allowed = index.allowed_rows(flt)
                compile_s += (time.perf_counter() - started) / COMPILE_REPEATS
                assert allowed is not None
                groups.append((rows, allowed, exact_truth(base, queries[rows], allowed.rows)))
            arm = index.plan_filter(groups[0][1], index.resolve_params(10, {}))  # type: ignore[attr-defined]
            row: dict[str, Any] = {
                "dataset": first.name,
                "queries": qname,
                "case": case.name,
                "selectivity": case.selectivity,
                "compile_us": 1e6 * compile_s / len(case.groups),
                "planner_arm": arm,
                "machine": machine_line(),
            }
            curves = {
                "glint": sweep(systems.glint("auto"), GLINT_EFS, groups, queries, args.repeats),
                "glint-scan": sweep(
                    systems.glint("scan"), GLINT_EFS[:4], groups, queries, args.repeats
                ),
                "glint-graph": sweep(
                    systems.glint("graph"), GLINT_EFS, groups, queries, args.repeats
                ),
                "faiss-hnsw": sweep(systems.faiss_hnsw, FAISS_EFS, groups, queries, args.repeats),
                "faiss-flat": sweep(systems.faiss_flat, (0,), groups, queries, args.repeats),
            }
            for name, points in curves.items():
                row[f"{name}_qps95"] = qps_at([(p["recall"], p["qps"]) for p in points], TARGET)
                row[f"{name}_max_recall"] = max(p["recall"] for p in points)
            row["curves"] = curves
            summary = {
                k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in row.items()
                if k not in ("curves", "machine")
            }
            print(json.dumps(summary), flush=True)
            if out is not None:
                out.write(json.dumps(row) + "\n")
                out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
