"""Thread control: glint parallelises searches itself, so BLAS should not do so as well.

Exact search splits queries across glint's own threads and each chunk calls BLAS; a BLAS that
starts its own threads on top oversubscribes the cores (and a single query pays milliseconds of
thread wake-ups). glint's own processes (CLI, server, benchmark workers) call
:func:`limit_blas_threads` once at start; an application embedding ``glint.index`` can do the
same, or keep its own BLAS settings.
"""

from __future__ import annotations

import logging

__all__ = ["limit_blas_threads"]

log = logging.getLogger(__name__)


def limit_blas_threads(threads: int = 1) -> None:
    """Limit every loaded BLAS library (OpenBLAS, MKL, BLIS) to ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    log.debug("BLAS limited to %d thread(s)", threads)
