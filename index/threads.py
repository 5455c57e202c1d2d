"""Thread control: glint decides how many threads a search uses, and nothing under it adds more.

- **glint's own threads.** A batch is split into spans of queries that run on a thread pool
  of the size the caller gives (:func:`run_spans`); every kernel under it (numba, BLAS)
  releases the GIL and runs single-threaded in the thread that calls it.
- **BLAS.** Exact search calls BLAS from each span; a BLAS that starts its own threads on top
  oversubscribes the cores (and a single query pays milliseconds of thread wake-ups). glint's
  own processes (CLI, server, benchmark workers) call :func:`limit_blas_threads` once at start;
  an application embedding ``glint.index`` can do the same, or keep its own BLAS settings.
- **faiss (OpenMP).** faiss parallelises with OpenMP, whose thread count is per calling thread
  (libgomp keeps it in the thread's own state). :func:`faiss_threads` sets it for the duration
  of one call in the current thread and restores it, so a search calls faiss with exactly
  the threads it was given (one faiss call per batch: its fast-scan groups the queries that
  probe the same list) and a build likewise, without changing what the application's other
  threads see.
- **A server.** Many requests at once must not each start ``threads`` threads: the service
  hands out cores from one budget (``glint.service.cores.CoreBudget``) and passes each search
  the number it got.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

__all__ = ["faiss_threads", "limit_blas_threads", "run_spans", "spans"]

log = logging.getLogger(__name__)


def limit_blas_threads(threads: int = 1) -> None:
    """Limit every loaded BLAS library (OpenBLAS, MKL, BLIS) to ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    log.debug("BLAS limited to %d thread(s)", threads)


@contextmanager
def faiss_threads(threads: int) -> Iterator[None]:
    """Run faiss with ``threads`` OpenMP threads in the calling thread, then restore."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def spans(nq: int, threads: int, min_span: int = 4) -> list[tuple[int, int]]:
    """Split ``nq`` queries into at most ``threads`` contiguous spans of >= ``min_span``."""
    parts = max(1, min(threads, nq // min_span or 1))
    bounds = np.linspace(0, nq, parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def run_spans(nq: int, threads: int, run: Callable[[tuple[int, int]], None]) -> None:
    """Call ``run(span)`` for each span of :func:`spans`, on ``threads`` threads at most."""
    parts = spans(nq, threads)
    if len(parts) == 1:
        run(parts[0])
        return
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        list(pool.map(run, parts))
