"""Graph profile: layer 0 as faiss builds it against glint's Vamana refinement of it, on one
storage, for each pruning slack ``alpha`` and beam given.

    python -m glint.bench.graphs --dataset DIR [--n 100000] [--settings 1.1:64,1.1:64:2]

A setting is ``alpha:beam`` or ``alpha:beam:passes`` (the pass repeated on its own output).

For each graph: the refinement's time, the mean layer-0 degree, and per query set recall@10
and 1-thread QPS (best of ``--repeats``) at each ``--ef``. Recall at a fixed beam width says
how good the graph is; QPS says what its extra edges cost. A development tool that chose
``LAYER0_ALPHA`` and ``LAYER0_BEAM``; the benchmark proper is ``glint-bench run``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from glint.index.base import IndexMeta
from glint.index.hnsw import HNSWConfig, HNSWIndex, build_graph, refine_layer0
from glint.index.metrics import normalize_rows
from glint.index.threads import limit_blas_threads
from glint.index.vecstore import VectorStore

from .data import load_dataset


def _recall(ids: np.ndarray, gt: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(ids, gt[:, :10], strict=True))
    return hits / (10 * len(ids))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glint.bench.graphs")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--queries", default="id,ood", help="query sets, comma-separated")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--nq", type=int, default=2000)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--storage", default="lvq4x8")
    parser.add_argument("--settings", default="1.05:64,1.1:48,1.1:64,1.1:100,1.1:64:2,1.2:64")
    parser.add_argument("--ef", default="16,24,32,48")
    parser.add_argument("--threads", type=int, default=2, help="for the builds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    limit_blas_threads(1)
    sets = {name: load_dataset(args.dataset, name, nq=args.nq) for name in args.queries.split(",")}
    first = next(iter(sets.values()))
    base = np.ascontiguousarray(first.base[: args.n], dtype=np.float32)
    if args.n < first.base.shape[0]:
        raise SystemExit("--n below the base size: the ground truth is for the whole base")
    metric = first.metric
    data = normalize_rows(base, what="vectors") if metric == "cos" else base
    started = time.perf_counter()
    plain = build_graph(data, args.m, args.ef_construction, metric, args.threads)
    faiss_seconds = time.perf_counter() - started
    config = HNSWConfig(m=args.m, ef_construction=args.ef_construction, storage=args.storage)
    meta = IndexMeta(config, metric, base.shape[1], base.shape[0])
    index = HNSWIndex(meta, plain, VectorStore.encode(data, args.storage))
    graphs = [("faiss", 1.0, 0, 0, plain, faiss_seconds)]
    for setting in args.settings.split(","):
        alpha, beam, *more = setting.split(":")
        passes = int(more[0]) if more else 1
        started = time.perf_counter()
        graph = plain
        for _ in range(passes):
            graph = refine_layer0(data, graph, metric, float(alpha), int(beam), args.threads)
        seconds = time.perf_counter() - started
        graphs.append(("refined", float(alpha), int(beam), passes, graph, seconds))
    efs = [int(v) for v in args.ef.split(",")]
    for name, alpha, beam, passes, graph, seconds in graphs:
        searcher = index.with_graph(graph)
        row: dict[str, object] = {
            "graph": name,
            "alpha": alpha,
            "beam": beam,
            "passes": passes,
            "build_s": round(seconds, 1),
            "mean_degree": round(float((graph.layer0 >= 0).sum(axis=1).mean()), 1),
        }
        for set_name, data in sets.items():
            queries = np.ascontiguousarray(data.queries, dtype=np.float32)
            for ef in efs:
                searcher.search(queries[:50], 10, ef_search=ef, threads=1)
                best = float("inf")
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    ids = searcher.search(queries, 10, ef_search=ef, threads=1).ids
                    best = min(best, time.perf_counter() - began)
                row[f"{set_name}_ef{ef}"] = {
                    "recall": round(_recall(ids, data.gt), 4),
                    "qps": round(len(queries) / best),
                }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
