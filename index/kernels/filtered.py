"""The two arms of a filtered graph search (see :mod:`glint.index.hnsw` for the planner that
picks one).

- :func:`_scan_rows`: an exact scan of the allowed rows on the primary storage, keeping the
  ``ef`` best for the finish (a residual re-rank or a float re-score) that the graph search
  has too. Its cost is the number of allowed rows.
- :func:`_filtered_batch`: the beam search of :mod:`glint.index.kernels.graph` moving through
  the whole graph but admitting only allowed rows to its candidates and results (the ACORN
  idea): when fewer than half of a node's neighbours pass, the neighbours of those that fail
  are examined too (two hops), up to a neighbour list's worth of allowed rows, so the search
  keeps finding allowed rows where they are sparse. Rows that fail are never scored. A query
  that scores more than ``max_scored`` rows, or runs out of allowed candidates before it has
  ``ef`` results (the allowed rows it reached are cut off from the others), is marked in
  ``status`` for the exact scan to answer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .beam import _descend, _pop_max, _push_max, _push_min, _replace_min, _write_best
from .distances import prefetch_vector, score
from .prefetch import prefetch_row

_AHEAD = 8  # rows prefetched ahead of the one being scored
_ROWS_AHEAD = 4  # neighbour lists prefetched ahead of the one being read (two hops)


@njit(inline="always", nogil=True, fastmath=True)
def _scan_rows(
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
    rows: np.ndarray,
    ef: int,
    out_ids: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    """Score every row of ``rows`` (int64, ascending) for every query; write the ``ef`` best
    (ids, scores), best first, into ``out_ids``/``out_scores`` [nq, ef] (-1 / -inf padded)."""
    n = rows.shape[0]
    res_keys = np.empty(ef, np.float32)
    res_vals = np.empty(ef, np.int64)
    for qi in range(queries.shape[0]):
        q = queries[qi]
        n_res = 0
        for t in range(min(n, _AHEAD)):
            prefetch_vector(kind, fdata, hdata, codes, rows[t])
        for t in range(n):
            if t + _AHEAD < n:
                prefetch_vector(kind, fdata, hdata, codes, rows[t + _AHEAD])
            r = rows[t]
            s = score(
                kind, l2, q, q8s[qi], qscales[qi], qsums[qi], qmus[qi], fdata, hdata, codes, lut, r
            )
            if n_res < ef:
                n_res = _push_min(res_keys, res_vals, n_res, s, r)
            elif s > res_keys[0]:
                _replace_min(res_keys, res_vals, n_res, s, r)
        _write_best(res_keys, res_vals, n_res, out_ids, out_scores, qi)


@njit(inline="always", nogil=True, fastmath=True)
def _filtered_batch(
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
    layer0: np.ndarray,
    upper_nodes: np.ndarray,
    upper_levels: np.ndarray,
    upper_starts: np.ndarray,
    upper: np.ndarray,
    entry: int,
    max_level: int,
    ef: int,
    allowed: np.ndarray,
    max_scored: int,
    out_ids: np.ndarray,
    out_scores: np.ndarray,
    visited: np.ndarray,
    tag_state: np.ndarray,
    status: np.ndarray,
) -> None:
    """Beam-search every query over the rows where ``allowed`` (uint8 [n]) is 1, writing the
    ``ef`` best as :func:`~glint.index.kernels.graph._search_batch` does. ``status[qi]`` is
    set to 1 for a query that gave up after scoring ``max_scored`` rows or found fewer than
    ``ef`` (its results may then be incomplete)."""
    width = layer0.shape[1]
    tag = tag_state[0]
    few = width // 2  # fewer allowed neighbours than this: look two hops away
    cap = ef + 2 * width + 1
    cand_keys = np.empty(cap, np.float32)
    cand_vals = np.empty(cap, np.int64)
    res_keys = np.empty(ef, np.float32)
    res_vals = np.empty(ef, np.int64)
    fresh = np.empty(2 * width, np.int64)
    failed = np.empty(width, np.int64)
    for qi in range(queries.shape[0]):
        q = queries[qi]
        q8 = q8s[qi]
        qscale = qscales[qi]
        qsum = qsums[qi]
        qmu = qmus[qi]
        tag += 1
        if tag == 65535:
            visited[:] = 0
            tag = 1
        tag_state[0] = tag
        status[qi] = 0
        node, best = _descend(
            q, q8, qscale, qsum, qmu, kind, l2, fdata, hdata, codes, lut, upper_nodes,
            upper_levels, upper_starts, upper, entry, max_level,
        )  # fmt: skip
        scored = max_level + 1
        # the entry point seeds the beam; it enters the results only if it is allowed
        visited[node] = tag
        n_cand = _push_max(cand_keys, cand_vals, 0, best, node)
        n_res = 0
        if allowed[node]:
            n_res = _push_min(res_keys, res_vals, 0, best, node)
        while n_cand > 0:
            cur_score = cand_keys[0]
            cur = cand_vals[0]
            if n_res == ef and cur_score < res_keys[0]:
                break
            if scored > max_scored:
                status[qi] = 1
                break
            n_cand = _pop_max(cand_keys, cand_vals, n_cand)
            if n_cand > 0:
                prefetch_row(layer0, cand_vals[0])
            row0 = layer0[cur]
            n_fresh = 0
            n_failed = 0
            n_pass = 0
            for t in range(width):
                nb = row0[t]
                if nb < 0:
                    break
                if allowed[nb]:
                    n_pass += 1
                    if visited[nb] != tag:
                        visited[nb] = tag
                        fresh[n_fresh] = nb
                        n_fresh += 1
                else:
                    failed[n_failed] = nb
                    n_failed += 1
            if n_pass < few:
                # through the neighbours that fail, to theirs that pass, until the node has a
                # neighbour list's worth of allowed ones (ACORN truncates to M likewise)
                added = n_pass
                for f in range(min(n_failed, _ROWS_AHEAD)):
                    prefetch_row(layer0, failed[f])
                for f in range(n_failed):
                    if added >= width:
                        break
                    if f + _ROWS_AHEAD < n_failed:  # each row read is a cache miss: overlap them
                        prefetch_row(layer0, failed[f + _ROWS_AHEAD])
                    row1 = layer0[failed[f]]
                    for t in range(width):
                        nb = row1[t]
                        if nb < 0:
                            break
                        if allowed[nb] and visited[nb] != tag:
                            visited[nb] = tag
                            fresh[n_fresh] = nb
                            n_fresh += 1
                            added += 1
                            if added >= width:
                                break
            for t in range(min(n_fresh, _AHEAD)):
                prefetch_vector(kind, fdata, hdata, codes, fresh[t])
            scored += n_fresh
            for t in range(n_fresh):
                if t + _AHEAD < n_fresh:
                    prefetch_vector(kind, fdata, hdata, codes, fresh[t + _AHEAD])
                nb = fresh[t]
                s = score(kind, l2, q, q8, qscale, qsum, qmu, fdata, hdata, codes, lut, nb)
                if n_res < ef:
                    n_res = _push_min(res_keys, res_vals, n_res, s, nb)
                elif s > res_keys[0]:
                    _replace_min(res_keys, res_vals, n_res, s, nb)
                else:
                    continue
                if n_cand == cap:
                    kept = 0
                    for c in range(n_cand):
                        if cand_keys[c] >= res_keys[0]:
                            kept = _push_max(cand_keys, cand_vals, kept, cand_keys[c], cand_vals[c])
                    n_cand = kept
                n_cand = _push_max(cand_keys, cand_vals, n_cand, s, nb)
        if n_res < ef:
            # the allowed rows within two hops of those reached ran out before the results
            # filled: others may lie beyond, so the exact scan answers this query
            status[qi] = 1
        _write_best(res_keys, res_vals, n_res, out_ids, out_scores, qi)
    tag_state[0] = tag
