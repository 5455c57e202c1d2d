"""Query preparation compiled in one pass: the fixed cost a single query pays before the search
kernel (checking, normalising, the LVQ query terms, the 8-bit query), which a chain of NumPy
calls made several times larger than the work itself.

Both functions report trouble instead of raising: the caller then takes the checked NumPy path,
which finds the same problem and raises the error that names it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["finite_rows", "lvq_query_terms"]

# squared norms outside [_TINY, _HUGE] take the float64 path of glint.index.metrics
_TINY = 1e-30
_HUGE = 1e30


@njit(cache=True, nogil=True)
def finite_rows(x: np.ndarray, normalize: bool, out: np.ndarray) -> bool:
    """Copy float32 ``x`` [n, d] into ``out``, scaled to unit length if ``normalize``; False
    (``out`` then undefined) if a value is not finite or a squared norm is outside the range
    float32 normalises safely."""
    n, d = x.shape
    for i in range(n):
        row = x[i]
        sq = np.float32(0.0)
        for j in range(d):
            sq += row[j] * row[j]
        if not np.isfinite(sq):  # a non-finite value, or squares past float32
            return False
        if not normalize:
            out[i] = row
            continue
        if sq < _TINY or sq > _HUGE:
            return False
        norm = np.sqrt(sq)
        for j in range(d):
            out[i, j] = row[j] / norm
    return True


@njit(cache=True, nogil=True)
def lvq_query_terms(
    q: np.ndarray,
    mean: np.ndarray,
    quantize: bool,
    qsum: np.ndarray,
    qmu: np.ndarray,
    q8: np.ndarray,
    qscale: np.ndarray,
) -> None:
    """Per query row: ``qsum = Σq``, ``qmu = <q, μ>`` and, if ``quantize``, the int8 query
    ``q8`` (its first ``d`` bytes; the rest, padding, zero) with ``q ≈ qscale · q8``, rounded
    to nearest. One layout serves both code widths: the 4-bit codes' byte ``t`` holds
    dimensions ``t`` and ``t + h``, which sit at bytes ``t`` and ``h + t`` of this query."""
    n, d = q.shape
    for i in range(n):
        row = q[i]
        s = np.float32(0.0)
        m = np.float32(0.0)
        peak = np.float32(0.0)
        for j in range(d):
            s += row[j]
            m += row[j] * mean[j]
            peak = max(peak, abs(row[j]))
        qsum[i] = s
        qmu[i] = m
        if not quantize:
            continue
        # in float64: the scale of a query of tiny values would underflow float32
        inv = 127.0 / np.float64(peak) if peak > 0 else 1.0
        qscale[i] = np.float32(1.0 / inv)
        out = q8[i]
        out[:] = 0
        for j in range(d):
            out[j] = np.int8(min(127.0, max(-127.0, np.rint(row[j] * inv))))
