"""Exact re-scoring of candidate lists: each query's candidates (rows from a coarse search) are
scored on stored vectors (float32, float16 or LVQ codes) and the best ``k`` kept, best first.

Used by ``ivfpq`` to re-rank product-quantized candidates on LVQ-8 codes or float32 vectors.
Candidate rows are prefetched a few ahead of the one being scored: they are scattered over
the whole collection, so each is a cache miss (or a page fault when the store is on disk).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .distances import F16, F32, LVQ4, LVQ8, prefetch_vector, score

_AHEAD = 6


@njit(inline="always", nogil=True, fastmath=True)
def _rescore(
    queries: np.ndarray,
    q8s: np.ndarray,
    qscales: np.ndarray,
    qsums: np.ndarray,
    qmus: np.ndarray,
    kind: int,
    l2: bool,
    fdata: np.ndarray,
    hdata: np.ndarray,
    codes: np.ndarray,
    lut: np.ndarray,
    cand: np.ndarray,
    out_ids: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    """Score ``cand`` int64 [nq, c] (-1 = none) and write the best ``k = out_ids.shape[1]``
    rows and scores (larger is better), best first, -1 / -inf padded."""
    width = cand.shape[1]
    k = out_ids.shape[1]
    buf = np.empty(width, np.float32)
    for qi in range(queries.shape[0]):
        q = queries[qi]
        row = cand[qi]
        for t in range(min(width, _AHEAD)):
            if row[t] >= 0:
                prefetch_vector(kind, fdata, hdata, codes, row[t])
        for t in range(width):
            if t + _AHEAD < width and row[t + _AHEAD] >= 0:
                prefetch_vector(kind, fdata, hdata, codes, row[t + _AHEAD])
            i = row[t]
            if i < 0:
                buf[t] = -np.inf
            else:
                buf[t] = score(
                    kind, l2, q, q8s[qi], qscales[qi], qsums[qi], qmus[qi], fdata, hdata, codes,
                    lut, i,
                )  # fmt: skip
        order = np.argsort(-buf)
        for pos in range(k):
            if pos < width and row[order[pos]] >= 0:
                out_ids[qi, pos] = row[order[pos]]
                out_scores[qi, pos] = buf[order[pos]]
            else:
                out_ids[qi, pos] = -1
                out_scores[qi, pos] = -np.inf


def _specialise(kind: int, l2: bool):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """``_rescore`` with the storage kind and metric fixed at compile time (see
    :func:`glint.index.kernels.graph._specialise` for why)."""

    @njit(cache=True, nogil=True, fastmath=True)
    def rescore(  # type: ignore[no-untyped-def]  # numba types these at compile time
        queries, q8s, qscales, qsums, qmus, fdata, hdata, codes, lut, cand, out_ids, out_scores
    ):
        _rescore(
            queries, q8s, qscales, qsums, qmus, kind, l2, fdata, hdata, codes, lut, cand, out_ids,
            out_scores,
        )  # fmt: skip

    return rescore


_SPECIALISED = {(k, l2): _specialise(k, l2) for k in (F32, F16, LVQ8, LVQ4) for l2 in (False, True)}


def rescore(queries, q8s, qscales, qsums, qmus, kind, l2, *rest) -> None:  # type: ignore[no-untyped-def]  # numba types these at compile time
    """Re-score candidates with the kernel specialised for ``kind`` and the metric; arguments
    as :func:`_rescore`."""
    _SPECIALISED[(int(kind), bool(l2))](queries, q8s, qscales, qsums, qmus, *rest)
