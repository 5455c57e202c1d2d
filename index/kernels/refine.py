"""Vamana-style refinement of an HNSW graph's layer 0 (see ``docs/design-lvq-hnsw.md``).

HNSW keeps a neighbour ``j`` of ``p`` only if no kept neighbour ``k`` is nearer to ``j`` than
``p`` is: the relative-neighbourhood rule. Vamana (DiskANN) relaxes it by a factor
``alpha >= 1``: ``j`` is dropped only if ``alpha · d(k, j) <= d(p, j)``, which keeps the
long edges that let a beam search cross the space in fewer hops. Here each node gets a new
neighbour list from a beam search of the existing graph (one read-only snapshot, so the result
does not depend on the order threads take the nodes), then every new edge is added in reverse,
and a list that overflows is pruned again.

Distances are squared L2 on the float vectors, for every metric: on unit vectors (``cos``,
and the embeddings ``ip`` is used with) that orders pairs as the inner product does.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always", nogil=True, fastmath=True)
def _dist2(x: np.ndarray, norms: np.ndarray, a: int, b: int) -> float:
    s = np.float32(0.0)
    xa = x[a]
    xb = x[b]
    for t in range(xa.shape[0]):
        s += xa[t] * xb[t]
    return norms[a] + norms[b] - 2.0 * s


@njit(inline="always", nogil=True)
def _contains(pool: np.ndarray, count: int, j: int) -> bool:
    """Whether ``j`` is among the first ``count`` entries of ``pool``."""
    for t in range(count):  # noqa: SIM110  # a plain loop: numba compiles it, not a generator
        if pool[t] == j:
            return True
    return False


@njit(inline="always", nogil=True, fastmath=True)
def _prune(
    x: np.ndarray,
    norms: np.ndarray,
    node: int,
    pool: np.ndarray,
    pool_dist: np.ndarray,
    count: int,
    alpha2: float,
    out: np.ndarray,
) -> None:
    """Write into ``out`` (-1 padded) the neighbours of ``node`` kept from the first ``count``
    of ``pool``, which must be sorted nearest first with their squared distances in
    ``pool_dist``: each ``j`` is kept unless a nearer kept ``k`` has
    ``alpha² · d²(k, j) <= d²(node, j)``."""
    width = out.shape[0]
    kept = 0
    for c in range(count):
        if kept == width:
            break
        j = pool[c]
        if j == node:
            continue
        bound = pool_dist[c]
        keep = True
        for t in range(kept):
            k = out[t]
            if k == j or alpha2 * _dist2(x, norms, k, j) <= bound:
                keep = False
                break
        if keep:
            out[kept] = j
            kept += 1
    for t in range(kept, width):
        out[t] = -1


@njit(cache=True, nogil=True, fastmath=True)
def prune_beams(
    x: np.ndarray,
    norms: np.ndarray,
    first: int,
    beam_ids: np.ndarray,
    l2: bool,
    beam_scores: np.ndarray,
    current: np.ndarray,
    alpha2: float,
    out: np.ndarray,
) -> None:
    """New neighbour lists for nodes ``first``, ``first + 1``, ...: row ``r`` of ``beam_ids``
    and ``beam_scores`` is node ``first + r``'s beam (scores larger-is-better: the inner
    product, or the negated squared distance for ``l2``). The pool is the beam plus the node's
    ``current`` neighbours, which keep the long edges a beam of near nodes lacks. Writes
    ``out[first + r]``."""
    width = current.shape[1]
    cap = beam_ids.shape[1] + width
    pool = np.empty(cap, np.int64)
    pool_dist = np.empty(cap, np.float32)
    for r in range(beam_ids.shape[0]):
        node = first + r
        count = 0
        for c in range(beam_ids.shape[1]):
            j = beam_ids[r, c]
            if j < 0:
                break
            pool[count] = j
            if l2:
                pool_dist[count] = -beam_scores[r, c]
            else:
                pool_dist[count] = norms[node] + norms[j] - 2.0 * beam_scores[r, c]
            count += 1
        in_beam = count
        for t in range(width):
            j = current[node, t]
            if j < 0:
                break
            if not _contains(pool, in_beam, j):
                pool[count] = j
                pool_dist[count] = _dist2(x, norms, node, j)
                count += 1
        order = np.argsort(pool_dist[:count], kind="mergesort")
        sorted_pool = pool[:count][order]
        _prune(x, norms, node, sorted_pool, pool_dist[:count][order], count, alpha2, out[node])


@njit(cache=True, nogil=True, fastmath=True)
def merge_reverse(
    x: np.ndarray,
    norms: np.ndarray,
    first: int,
    last: int,
    forward: np.ndarray,
    rev_starts: np.ndarray,
    rev_sources: np.ndarray,
    alpha2: float,
    out: np.ndarray,
) -> None:
    """For nodes ``first..last-1``: their ``forward`` lists plus the nodes that point at them
    (``rev_sources[rev_starts[q]:rev_starts[q + 1]]``, ascending), deduplicated; a union of
    more than ``width`` is pruned again. Writes ``out[q]``."""
    width = forward.shape[1]
    cap = width
    pool = np.empty(cap, np.int64)
    for q in range(first, last):
        need = width + rev_starts[q + 1] - rev_starts[q]
        if need > cap:
            cap = need
            pool = np.empty(cap, np.int64)
        count = 0
        for t in range(width):
            j = forward[q, t]
            if j < 0:
                break
            pool[count] = j
            count += 1
        listed = count
        for s in range(rev_starts[q], rev_starts[q + 1]):
            j = rev_sources[s]
            if not _contains(pool, listed, j):
                pool[count] = j
                count += 1
        row = out[q]
        if count <= width:
            row[:count] = pool[:count]
            row[count:] = -1
            continue
        dist = np.empty(count, np.float32)
        for t in range(count):
            dist[t] = _dist2(x, norms, q, pool[t])
        order = np.argsort(dist, kind="mergesort")  # stable: ties keep the listed order
        _prune(x, norms, q, pool[:count][order], dist[order], count, alpha2, row)
