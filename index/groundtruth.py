"""Exact neighbours and recall: what ``glint search --gt`` and ``glint build --check-recall``
measure an index against.

:func:`exact_knn` is brute force with the flat index's kernel (:func:`~glint.index.flat.
exact_search`; exact Chamfer for token sets), so a ``flat:storage=f32`` index agrees with it
row for row. :func:`recall_at_k` compares ids: ground truth from a file must hold ids as the
index returns them (row numbers for an index built without ids, the ann-benchmarks
convention).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Index
from .errors import InputError
from .flat import ROW_BLOCK, exact_search
from .metrics import Metric, normalize_rows
from .multivec import TokenSets, exact_maxsim
from .validate import check_threads

__all__ = ["check_truth", "exact_knn", "recall_at_k", "recall_check", "sample_queries"]


def exact_knn(
    base: np.ndarray | TokenSets,
    queries: np.ndarray | TokenSets,
    k: int,
    metric: Metric,
    *,
    threads: int = 1,
) -> np.ndarray:
    """Rows int64 ``[nq, k]`` of the exact ``k`` nearest ``base`` rows to each query, best
    first (ties to the smaller row, -1 past ``n``), under ``metric`` as an index scores it:
    ``ip``, ``cos`` (both sides normalised; a normalised copy of ``base`` is made) or ``l2``.
    ``base`` float32 ``[n, d]`` (memory-mapped is fine: it is read in blocks) and ``queries``
    ``[nq, d]``; or token sets for both, scored by Chamfer (MaxSim) similarity."""
    if isinstance(base, TokenSets) or isinstance(queries, TokenSets):
        if not (isinstance(base, TokenSets) and isinstance(queries, TokenSets)):
            raise InputError("exact_knn: token sets are compared with token sets only")
        if metric == "cos":
            base, queries = base.normalized(), queries.normalized()
        return exact_maxsim(base, queries, k, threads=threads)[0]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.asarray(base, dtype=np.float32)  # a view of float32 input, memory-mapped or not
    if metric == "cos":
        q, x = normalize_rows(q, zeros="keep"), normalize_rows(x, zeros="keep")
    sq_norms = None
    if metric == "l2":  # block by block as the flat index does, so the scores agree to the bit
        blocks = (x[s : s + ROW_BLOCK] for s in range(0, x.shape[0], ROW_BLOCK))
        sq_norms = np.concatenate([np.einsum("ij,ij->i", b, b) for b in blocks])
    rows, _ = exact_search(q, x, k, sq_norms=sq_norms, threads=threads)
    return rows


def check_truth(truth: np.ndarray, nq: int, k: int) -> np.ndarray:
    """``truth`` as int64 if it has a row for each of ``nq`` queries and at least ``k``
    neighbours in each, else an :class:`InputError` naming both shapes."""
    truth = np.asarray(truth)
    if truth.ndim != 2 or truth.shape[0] != nq or truth.shape[1] < k:
        raise InputError(
            f"ground truth has shape {tuple(truth.shape)}, but the search has {nq} queries "
            f"at k={k}: need {nq} rows of at least {k} neighbours"
        )
    return truth.astype(np.int64, copy=False)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """``sum_i |found[i, :k] ∩ truth[i, :k]| / (nq · k)``: the share of the true ``k``
    nearest ids that a search returned. Negative ids (padding) never match, and an id listed
    twice in a row counts once. ``found`` and ``truth`` are integer ``[nq, >= k]``."""
    found = np.asarray(found)
    if found.ndim != 2 or found.shape[1] < k:
        raise InputError(f"results have shape {tuple(found.shape)}; need at least {k} columns")
    nq = int(found.shape[0])
    truth = check_truth(truth, nq, k)
    # After removing repeats within each side, an id found in both sides is exactly one
    # equal adjacent pair in the row-wise sort of the two sides together.
    both = np.sort(np.concatenate([_distinct(found[:, :k], -1), _distinct(truth[:, :k], -2)], 1))
    hits = (both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0)
    return int(hits.sum()) / (nq * k)


def _distinct(ids: np.ndarray, pad: int) -> np.ndarray:
    """Each row sorted, with repeats and negative ids replaced by ``pad``."""
    out = np.sort(ids.astype(np.int64), axis=1)
    repeat = out[:, 1:] == out[:, :-1]
    out[:, 1:][repeat] = pad
    out[out < 0] = pad
    return out


def sample_queries(items: Any, n: int, *, seed: int = 0) -> Any:
    """``min(n, count)`` distinct rows of ``items`` (vectors ``[count, d]`` or token sets),
    drawn with ``seed``, in row order."""
    count = items.count if isinstance(items, TokenSets) else int(items.shape[0])
    rows = np.sort(np.random.default_rng(seed).choice(count, size=min(n, count), replace=False))
    if not isinstance(items, TokenSets):
        return np.asarray(items[rows], dtype=np.float32)
    starts, lengths = items.offsets[rows], items.lengths[rows]
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # token t of the sample is token t - offsets[set] of its set, at starts[set] in items
    take = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return TokenSets(np.asarray(items.tokens[take], dtype=np.float32), offsets)


def recall_check(
    index: Index[Any],
    base: np.ndarray | TokenSets,
    queries: np.ndarray | TokenSets,
    *,
    k: int = 10,
    threads: int | None = None,
) -> float:
    """Recall@``k`` of ``index`` (searched at its default parameters) against an exact search
    of ``queries`` over ``base``, the vectors it was built from (exact rows are mapped to the
    index's own ids, if it has any)."""
    found = index.search(queries, k, threads=threads).ids
    rows = exact_knn(base, queries, k, index.metric, threads=check_threads(threads))
    ids = index.ids
    truth = rows if ids is None else np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)
    return recall_at_k(found, truth, k)
