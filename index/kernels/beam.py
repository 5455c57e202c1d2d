"""The pieces every beam search over the graph shares: the heaps of candidates and results,
the greedy descent through the upper layers, and writing a result heap out best first.

Kept apart from :mod:`glint.index.kernels.graph` so that the filtered searches
(:mod:`glint.index.kernels.filtered`) use them too and the specialised search can import
both at module level (a function imported inside ``_specialise`` became a closure variable,
which numba's cache cannot key: every process compiled every search again).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .distances import score


@njit(inline="always", nogil=True)
def _push_max(keys: np.ndarray, vals: np.ndarray, size: int, key: float, val: int) -> int:
    """Push onto a max-heap; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if keys[parent] >= key:
            break
        keys[pos] = keys[parent]
        vals[pos] = vals[parent]
        pos = parent
    keys[pos] = key
    vals[pos] = val
    return size + 1


@njit(inline="always", nogil=True)
def _pop_max(keys: np.ndarray, vals: np.ndarray, size: int) -> int:
    """Remove the root of a max-heap of ``size`` items; returns the new size."""
    size -= 1
    key = keys[size]
    val = vals[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] > keys[child]:
            child += 1
        if keys[child] <= key:
            break
        keys[pos] = keys[child]
        vals[pos] = vals[child]
        pos = child
    keys[pos] = key
    vals[pos] = val
    return size


@njit(inline="always", nogil=True)
def _push_min(keys: np.ndarray, vals: np.ndarray, size: int, key: float, val: int) -> int:
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if keys[parent] <= key:
            break
        keys[pos] = keys[parent]
        vals[pos] = vals[parent]
        pos = parent
    keys[pos] = key
    vals[pos] = val
    return size + 1


@njit(inline="always", nogil=True)
def _replace_min(keys: np.ndarray, vals: np.ndarray, size: int, key: float, val: int) -> None:
    """Replace the root of a min-heap with (key, val) and restore the heap."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= key:
            break
        keys[pos] = keys[child]
        vals[pos] = vals[child]
        pos = child
    keys[pos] = key
    vals[pos] = val


@njit(inline="always", nogil=True, fastmath=True)
def _descend(  # type: ignore[no-untyped-def]  # numba types these at compile time
    q,
    q8,
    qscale,
    qsum,
    qmu,
    kind,
    l2,
    fdata,
    hdata,
    codes,
    lut,
    upper_nodes,
    upper_levels,
    upper_starts,
    upper,
    entry,
    max_level,
):
    """Greedy descent from ``entry`` through the upper layers: layer 0's starting node and
    its score."""
    node = entry
    best = score(kind, l2, q, q8, qscale, qsum, qmu, fdata, hdata, codes, lut, node)
    for level in range(max_level, 0, -1):
        changed = True
        while changed:
            changed = False
            slot = np.searchsorted(upper_nodes, node)
            if slot == upper_nodes.shape[0] or upper_nodes[slot] != node:
                break
            if upper_levels[slot] < level:
                break
            row = upper[upper_starts[slot] + level - 1]
            for t in range(row.shape[0]):
                nb = row[t]
                if nb < 0:
                    break
                s = score(kind, l2, q, q8, qscale, qsum, qmu, fdata, hdata, codes, lut, nb)
                if s > best:
                    best = s
                    node = nb
                    changed = True
    return node, best


@njit(inline="always", nogil=True)
def _write_best(
    res_keys: np.ndarray,
    res_vals: np.ndarray,
    n_res: int,
    out_ids: np.ndarray,
    out_scores: np.ndarray,
    qi: int,
) -> None:
    """Write a result heap of ``n_res`` items into row ``qi`` of the outputs, best first,
    padded with -1 / -inf."""
    for pos in range(out_ids.shape[1]):
        out_ids[qi, pos] = -1
        out_scores[qi, pos] = -np.inf
    order = np.argsort(-res_keys[:n_res])
    for pos in range(n_res):
        out_ids[qi, pos] = res_vals[order[pos]]
        out_scores[qi, pos] = res_keys[order[pos]]
