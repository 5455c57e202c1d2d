"""Top-k selection over blocks of scores, compiled: one pass over each block with a min-heap of
``k`` per query (the heavy part of an exact search stays the BLAS product before it).

NumPy's ``argpartition``/``take_along_axis`` chain cost more than the product for one query
against a few thousand vectors; this costs about one comparison per score.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["TopK"]


@njit(inline="always", nogil=True)
def _worse(key_a: float, row_a: int, key_b: float, row_b: int) -> bool:
    """Whether entry a ranks below entry b: padding (row -1) below any row, NaN above any
    number (as NumPy sorts it, so a non-finite score stays visible to callers that refuse
    it), then the smaller score, then, on equal scores, the larger row."""
    if row_a < 0:
        return row_b >= 0
    if row_b < 0:
        return False
    nan_a, nan_b = key_a != key_a, key_b != key_b
    if nan_a != nan_b:
        return nan_b
    if not nan_a and key_a != key_b:
        return key_a < key_b
    return row_a > row_b


@njit(inline="always", nogil=True)
def _sift_down(keys: np.ndarray, rows: np.ndarray, k: int) -> None:
    """Restore the min-heap (the worst entry at 0, see :func:`_worse`) after the root was
    replaced."""
    pos = 0
    key, row = keys[0], rows[0]
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        other = child + 1
        if other < k and _worse(keys[other], rows[other], keys[child], rows[child]):
            child = other
        if _worse(keys[child], rows[child], key, row):
            keys[pos], rows[pos] = keys[child], rows[child]
            pos = child
        else:
            break
    keys[pos], rows[pos] = key, row


@njit(cache=True, nogil=True)
def _push(block: np.ndarray, first_row: int, keys: np.ndarray, rows: np.ndarray) -> None:
    """Merge ``block`` [nq, nb] (columns are rows ``first_row...``) into the heaps ``keys`` /
    ``rows`` [nq, k]. Any row displaces padding, whatever its score (-inf and NaN included);
    rows arrive in increasing order, so a score equal to the heap's worst never displaces it:
    ties keep the smaller row."""
    k = keys.shape[1]
    for qi in range(block.shape[0]):
        heap_keys, heap_rows = keys[qi], rows[qi]
        scores = block[qi]
        for j in range(scores.shape[0]):
            s = scores[j]
            row = first_row + j
            if _worse(heap_keys[0], heap_rows[0], s, row):
                heap_keys[0], heap_rows[0] = s, row
                _sift_down(heap_keys, heap_rows, k)


@njit(cache=True, nogil=True)
def _sorted(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's entries best first, ties to the smaller row, padding (-1, -inf) last."""
    nq, k = keys.shape
    out_rows = np.empty((nq, k), np.int64)
    out_keys = np.empty((nq, k), np.float32)
    big = np.iinfo(np.int64).max
    for qi in range(nq):
        tie = np.where(rows[qi] < 0, big, rows[qi])
        by_row = np.argsort(tie, kind="mergesort")
        order = by_row[np.argsort(-keys[qi][by_row], kind="mergesort")]
        for pos in range(k):
            out_rows[qi, pos] = rows[qi, order[pos]]
            out_keys[qi, pos] = keys[qi, order[pos]]
    return out_rows, out_keys


class TopK:
    """Running top-``k`` of larger-is-better scores for ``nq`` queries over row blocks."""

    def __init__(self, nq: int, k: int) -> None:
        self.k = k
        self.scores = np.full((nq, k), -np.inf, dtype=np.float32)
        self.rows = np.full((nq, k), -1, dtype=np.int64)

    def push(self, block_scores: np.ndarray, first_row: int) -> None:
        """Merge ``block_scores`` [nq, nb] whose columns are rows ``first_row...``."""
        block = np.ascontiguousarray(block_scores, dtype=np.float32)
        _push(block, first_row, self.scores, self.rows)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores), best first; ties go to the smaller row; padding is (-1, -inf)."""
        rows, scores = _sorted(self.scores, self.rows)
        return rows, scores
