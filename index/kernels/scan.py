"""Scores of a few queries against a block of rows, for exact search.

BLAS is the right tool for many queries at once; for one query (or a handful) a matrix-vector
product through OpenBLAS costs far more than the arithmetic, above all when its threads must
wake up on a busy machine. These compiled loops read each row once per query, in the caller's
thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FEW_QUERIES", "dot_codes", "dot_rows"]

#: Up to this many queries, exact search scores rows with these loops instead of BLAS.
FEW_QUERIES = 4


@njit(cache=True, nogil=True, fastmath=True)
def dot_rows(queries: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """``out[i, r] = <queries[i], rows[r]>`` for float32 ``rows`` [nb, d]."""
    for r in range(rows.shape[0]):
        row = rows[r]
        for i in range(queries.shape[0]):
            q = queries[i]
            s = np.float32(0.0)
            for j in range(row.shape[0]):
                s += q[j] * row[j]
            out[i, r] = s


@njit(cache=True, nogil=True, fastmath=True)
def dot_codes(queries: np.ndarray, records: np.ndarray, dim: int, out: np.ndarray) -> None:
    """``out[i, r] = <queries[i], c_r>`` for the LVQ-8 codes ``c_r`` (the first ``dim`` bytes of
    record ``r``), before each row's scale and bias."""
    for r in range(records.shape[0]):
        codes = records[r, :dim]
        for i in range(queries.shape[0]):
            q = queries[i]
            s = np.float32(0.0)
            for j in range(dim):
                s += q[j] * np.float32(codes[j])
            out[i, r] = s
