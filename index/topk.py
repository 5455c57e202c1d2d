"""Top-k selection over blocks of scores (NumPy; the heavy part is the BLAS product)."""

from __future__ import annotations

import numpy as np

__all__ = ["TopK"]


class TopK:
    """Running top-``k`` of larger-is-better scores for ``nq`` queries over row blocks."""

    def __init__(self, nq: int, k: int) -> None:
        self.k = k
        self.scores = np.full((nq, k), -np.inf, dtype=np.float32)
        self.rows = np.full((nq, k), -1, dtype=np.int64)

    def push(self, block_scores: np.ndarray, first_row: int) -> None:
        """Merge ``block_scores`` [nq, nb] whose columns are rows ``first_row...``."""
        nb = block_scores.shape[1]
        kk = min(self.k, nb)
        if kk < nb:
            part = np.argpartition(block_scores, nb - kk, axis=1)[:, nb - kk :]
        else:
            part = np.broadcast_to(np.arange(nb), block_scores.shape)
        cand_scores = np.take_along_axis(block_scores, part, axis=1)
        all_scores = np.concatenate([self.scores, cand_scores], axis=1)
        all_rows = np.concatenate([self.rows, part + first_row], axis=1)
        width = all_scores.shape[1]
        keep = np.argpartition(all_scores, width - self.k, axis=1)[:, width - self.k :]
        self.scores = np.take_along_axis(all_scores, keep, axis=1)
        self.rows = np.take_along_axis(all_rows, keep, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores), best first; ties go to the smaller row; padding is (-1, -inf)."""
        tie_rows = np.where(self.rows < 0, np.iinfo(np.int64).max, self.rows)
        order = np.lexsort((tie_rows, -self.scores), axis=1)
        return (
            np.take_along_axis(self.rows, order, axis=1),
            np.take_along_axis(self.scores, order, axis=1),
        )
