"""Timing one search configuration at one knob value: batch QPS and single-query latency."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["LATENCY_QUERIES", "Point", "Searcher", "measure_point"]

LATENCY_QUERIES = 1000


class Searcher(Protocol):
    """A loaded index of some system, searched at a given knob value and thread count."""

    memory_bytes: int
    disk_bytes: int | None

    def search(
        self, queries: np.ndarray, k: int, threads: int, knob_value: int | None
    ) -> np.ndarray:
        """Ids (row numbers in the base) int64 [nq, k], best first, -1 padded."""
        ...


@dataclass
class Point:
    """What one knob value measured (recall is computed by the caller from ``ids``)."""

    ids: np.ndarray
    qps_1t: float
    qps_all: float
    p50_ms: float
    p99_ms: float


def _batch_qps(
    searcher: Searcher,
    queries: np.ndarray,
    k: int,
    threads: int,
    knob_value: int | None,
    repeats: int,
) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        searcher.search(queries, k, threads, knob_value)
        elapsed = time.perf_counter() - started
        rates.append(queries.shape[0] / max(elapsed, 1e-9))
    return float(statistics.median(rates))


def _latencies_ms(
    searcher: Searcher, queries: np.ndarray, k: int, knob_value: int | None
) -> np.ndarray:
    count = min(queries.shape[0], LATENCY_QUERIES)
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        one = queries[i : i + 1]
        started = time.perf_counter_ns()
        searcher.search(one, k, 1, knob_value)
        out[i] = (time.perf_counter_ns() - started) / 1e6
    return out


def measure_point(
    searcher: Searcher,
    queries: np.ndarray,
    k: int,
    knob_value: int | None,
    *,
    repeats: int,
    threads_all: int,
) -> Point:
    """One untimed batch run (its ids give recall; it also warms caches and JIT code), then
    ``repeats`` timed batch runs with 1 thread and with ``threads_all`` threads (medians), then
    single-query latency over the first ``min(nq, 1000)`` queries with 1 thread."""
    ids = np.asarray(searcher.search(queries, k, 1, knob_value))
    qps_1t = _batch_qps(searcher, queries, k, 1, knob_value, repeats)
    qps_all = _batch_qps(searcher, queries, k, threads_all, knob_value, repeats)
    lat = _latencies_ms(searcher, queries, k, knob_value)
    return Point(
        ids=ids,
        qps_1t=qps_1t,
        qps_all=qps_all,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
    )
