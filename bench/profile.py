"""Kernel profile: µs per query of glint's HNSW search per storage on one shared graph, next to
faiss ``IndexHNSWFlat`` built with the same parameters (and its distance count per query).

    python -m glint.bench.profile --dataset DIR [--n 100000] [--nq 1000] [--ef 24] [--m 32]

This isolates the search kernels from graph quality: every glint storage searches the same
graph. It is a development tool; the benchmark proper is ``glint-bench run``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from glint.index import build_index
from glint.index.hnsw import HNSWIndex
from glint.index.threads import limit_blas_threads
from glint.index.vecstore import STORAGES

from .data import load_dataset


def _best_of(repeats: int, run) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glint.bench.profile")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--queries", default="id")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--nq", type=int, default=1000)
    parser.add_argument("--ef", type=int, default=24)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    limit_blas_threads(1)
    import faiss

    data = load_dataset(args.dataset, args.queries)
    base = np.ascontiguousarray(data.base[: args.n], dtype=np.float32)
    queries = np.ascontiguousarray(data.queries[: args.nq], dtype=np.float32)
    metric = data.metric
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    peer = faiss.IndexHNSWFlat(base.shape[1], args.m, faiss_metric)
    peer.hnsw.efConstruction = 200
    peer.add(base)
    faiss.omp_set_num_threads(1)
    peer.hnsw.efSearch = args.ef
    faiss.cvar.hnsw_stats.reset()
    seconds = _best_of(args.repeats, lambda: peer.search(queries, 10))
    ndis = faiss.cvar.hnsw_stats.ndis / (args.repeats * len(queries))
    print(
        json.dumps(
            {
                "system": "faiss-hnsw",
                "ef": args.ef,
                "us_per_query": round(seconds / len(queries) * 1e6, 1),
                "distances_per_query": round(ndis),
            }
        )
    )
    graph = build_index(base, f"hnsw:m={args.m},ef_construction=200,storage=f32", metric)
    assert isinstance(graph, HNSWIndex)
    for storage in STORAGES:
        index = graph.with_storage(base, storage)
        kernels = {"integer" if index._search_kind != index.store.kind else "float": index}
        if "integer" in kernels:
            # the same index on the float kernel, timed in turn with the integer one
            kernels["float"] = graph.with_storage(base, storage)
            kernels["float"]._search_kind = index.store.kind
        for kernel, searcher in kernels.items():
            searcher.warm()
            seconds = _best_of(
                args.repeats,
                lambda i=searcher: i.search(queries, 10, ef_search=args.ef, threads=1),
            )
            row = {
                "system": "glint",
                "storage": storage,
                "kernel": kernel,
                "ef": args.ef,
                "us_per_query": round(seconds / len(queries) * 1e6, 1),
                "memory_bytes": searcher.memory_bytes,
            }
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
