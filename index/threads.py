"""Thread control: glint decides how many threads a search uses, and nothing under it adds more.

- **glint's own threads.** A batch is split into chunks of queries that the calling thread
  and up to ``threads - 1`` of the process's helper threads take in turn (:func:`run_spans`);
  every kernel under it (numba, BLAS) releases the GIL and runs single-threaded in the thread
  that calls it.
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
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

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
    """The chunks :func:`run_spans` splits ``nq`` queries into for ``threads`` threads: one
    chunk for one thread (or too few queries to share), else about four per thread (so that a
    thread whose chunks ran slower is made up by the others), each of >= ``min_span``."""
    if threads <= 1 or nq < 2 * min_span:
        return [(0, nq)] if nq > 0 else []
    size = max(min_span, -(-nq // (4 * threads)))
    return [(a, min(a + size, nq)) for a in range(0, nq, size)]


class _Helpers:
    """The process's helper threads for :func:`run_spans`: kept between searches (no thread
    start per batch, and each thread keeps its per-index scratch such as HNSW's visited
    array), grown when a search asks for more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    def pool(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._size < workers:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)  # its threads end after their work
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="glint-search")
                self._size = workers
            return self._pool


_HELPERS = _Helpers()


def run_spans(nq: int, threads: int, run: Callable[[tuple[int, int]], None]) -> None:
    """Call ``run(span)`` for each chunk of :func:`spans`, on ``threads`` threads at most: the
    calling thread and ``threads - 1`` helpers take the next chunk as they finish one.

    The caller never waits for a helper to start (helpers queued behind other searches are
    withdrawn once the caller has run out of chunks), so concurrent searches sharing the
    helpers cannot stall each other; an error in any chunk stops the others from starting
    new ones and is raised here."""
    parts = spans(nq, threads)
    if len(parts) <= 1:
        for part in parts:
            run(part)
        return
    following = itertools.count()  # next() on it is atomic under the GIL
    failed = threading.Event()

    def work() -> None:
        for i in following:
            if i >= len(parts) or failed.is_set():
                return
            try:
                run(parts[i])
            except BaseException:
                failed.set()
                raise

    pool = _HELPERS.pool(threads - 1)
    helpers = [pool.submit(work) for _ in range(min(threads, len(parts)) - 1)]
    try:
        work()
    finally:
        for helper in helpers:
            helper.cancel()  # not started yet: no chunk is left for it
        for helper in helpers:
            if not helper.cancelled():
                helper.result()  # waits for its chunk; raises its error
