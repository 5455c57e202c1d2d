"""HNSW search over any storage kind: greedy descent on the upper layers, then a beam search
of width ``ef`` on layer 0, then optional re-scoring with the residual level.

Graph arrays (see :class:`glint.index.hnsw.Graph`): ``layer0`` int32 [n, 2m] (-1 padded);
the nodes on layer 1 and above, ``upper_nodes`` int32 [u] (sorted), with their top layer
``upper_levels`` int8 [u] and first row ``upper_starts`` int64 [u] in ``upper`` int32
[rows, m]: the neighbours of ``upper_nodes[c]`` on layer ``l >= 1`` are
``upper[upper_starts[c] + l - 1]``. The visited set is a uint16 tag array reused across
queries. Every function here releases the GIL; batches are split across Python threads.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from .beam import _descend, _pop_max, _push_max, _push_min, _replace_min, _write_best
from .distances import (
    LVQ4,
    LVQ4_INT,
    LVQ8,
    LVQ8_INT,
    prefetch_vector,
    residual_score,
    score,
)
from .filtered import _filtered_batch, _scan_rows
from .prefetch import prefetch_row
from .queries import lvq_query_terms
from .rescore import _rescore

_AHEAD = 8  # neighbours prefetched ahead of the one being scored


@njit(inline="always", nogil=True, fastmath=True)
def _search_batch(
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
    out_ids: np.ndarray,
    out_scores: np.ndarray,
    visited: np.ndarray,
    tag_state: np.ndarray,
) -> None:
    """Beam-search every query; writes the ``ef`` best (ids, scores), best first, into
    ``out_ids`` int64 [nq, ef] and ``out_scores`` float32 [nq, ef] (-1 / -inf padded).
    ``q8s``/``qscales`` are the int8 queries of the integer kinds (see
    :func:`~glint.index.kernels.distances.score`).

    ``visited`` (uint16 [n]) and ``tag_state`` (int64 [1]) belong to the calling thread and
    persist across calls: each query takes the next tag, so the array is cleared only when
    the tags wrap around, not on every call.
    """
    width = layer0.shape[1]
    tag = tag_state[0]
    cap = ef * width + width + 1
    cand_keys = np.empty(cap, np.float32)
    cand_vals = np.empty(cap, np.int64)
    res_keys = np.empty(ef, np.float32)
    res_vals = np.empty(ef, np.int64)
    fresh = np.empty(width, np.int64)
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
        node, best = _descend(
            q, q8, qscale, qsum, qmu, kind, l2, fdata, hdata, codes, lut, upper_nodes,
            upper_levels, upper_starts, upper, entry, max_level,
        )  # fmt: skip
        # beam search on layer 0
        visited[node] = tag
        n_cand = _push_max(cand_keys, cand_vals, 0, best, node)
        n_res = _push_min(res_keys, res_vals, 0, best, node)
        while n_cand > 0:
            cur_score = cand_keys[0]
            cur = cand_vals[0]
            if n_res == ef and cur_score < res_keys[0]:
                break
            n_cand = _pop_max(cand_keys, cand_vals, n_cand)
            if n_cand > 0:
                prefetch_row(layer0, cand_vals[0])
            row0 = layer0[cur]
            n_fresh = 0
            for t in range(width):
                nb = row0[t]
                if nb < 0:
                    break
                if visited[nb] != tag:
                    visited[nb] = tag
                    fresh[n_fresh] = nb
                    n_fresh += 1
            for t in range(min(n_fresh, _AHEAD)):
                prefetch_vector(kind, fdata, hdata, codes, fresh[t])
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
                    # keep only candidates still able to enter the results
                    kept = 0
                    for c in range(n_cand):
                        if cand_keys[c] >= res_keys[0]:
                            kept = _push_max(cand_keys, cand_vals, kept, cand_keys[c], cand_vals[c])
                    n_cand = kept
                n_cand = _push_max(cand_keys, cand_vals, n_cand, s, nb)
        _write_best(res_keys, res_vals, n_res, out_ids, out_scores, qi)


@njit(inline="always", nogil=True, fastmath=True)
def _rerank_residual(
    queries: np.ndarray,
    qsums: np.ndarray,
    qmus: np.ndarray,
    l2: bool,
    primary_kind: int,
    codes: np.ndarray,
    residual: np.ndarray,
    residual_bits: int,
    lut: np.ndarray,
    cand_ids: np.ndarray,
    cand_scores: np.ndarray,
    depth: int,
) -> None:
    """Re-score the first ``depth`` candidates of every query with the residual level and
    re-sort them in place (candidates past ``depth`` keep their primary scores)."""
    for qi in range(queries.shape[0]):
        q = queries[qi]
        count = 0
        # the residual rows were not read by the search: start loading them all at once
        for pos in range(depth):
            if cand_ids[qi, pos] < 0:
                break
            prefetch_row(residual, cand_ids[qi, pos])
        for pos in range(depth):
            i = cand_ids[qi, pos]
            if i < 0:
                break
            cand_scores[qi, pos] = residual_score(
                l2, q, qsums[qi], qmus[qi], primary_kind, codes, residual, residual_bits, lut, i
            )
            count += 1
        order = np.argsort(-cand_scores[qi, :count])
        ids = cand_ids[qi, :count][order]
        scores = cand_scores[qi, :count][order]
        cand_ids[qi, :count] = ids
        cand_scores[qi, :count] = scores


@njit(inline="always", nogil=True)
def _query_terms(queries: np.ndarray, mean: np.ndarray, lvq: bool, l2: bool, q8_width: int):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """The queries as the kernels take them (see :meth:`glint.index.vecstore.VectorStore.prepare`,
    which this mirrors inside the search call): ``(q, q8s, qscales, qsums, qmus)``; the int8
    queries only when ``q8_width`` > 0."""
    n, d = queries.shape
    q = np.empty((n, d), np.float32)
    qsums = np.zeros(n, np.float32)
    qmus = np.zeros(n, np.float32)
    qscales = np.ones(n, np.float32)
    q8s = np.zeros((n, max(q8_width, 1)), np.int8)
    if lvq and l2:
        for i in range(n):
            for j in range(d):
                q[i, j] = queries[i, j] - mean[j]
        return q, q8s, qscales, qsums, qmus
    q[:] = queries
    if lvq:
        lvq_query_terms(q, mean, q8_width > 0, qsums, qmus, q8s, qscales)
    return q, q8s, qscales, qsums, qmus


GRAPH, FILTERED, SCAN = 0, 1, 2
"""How a specialised search finds its candidates: the beam search; the beam search admitting
only allowed rows (:func:`~glint.index.kernels.filtered._filtered_batch`); an exact scan of
the allowed rows (:func:`~glint.index.kernels.filtered._scan_rows`)."""


@functools.cache
def _specialise(kind: int, l2: bool, residual_bits: int, final_kind: int, mode: int):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """One compiled search for a storage ``kind``, metric and ``mode``: the query terms, the
    candidates (``mode``: GRAPH, FILTERED or SCAN), then their finish: a re-rank on the
    residual level (``residual_bits`` 4 or 8), or a re-score of the candidates with the float
    kernel ``final_kind`` (for the integer kinds without a residual; -1: none).

    Everything is fixed at compile time: each storage and metric gets its own machine code with
    only its distance kernel in the hot loop (with a run-time ``kind`` all of them sit in the
    loop and search runs at about half the speed), and one query pays one call into compiled
    code, not one per stage.
    """
    lvq = kind in (LVQ8, LVQ4, LVQ8_INT, LVQ4_INT)
    four_bit = kind in (LVQ4, LVQ4_INT)
    quantize = kind in (LVQ8_INT, LVQ4_INT)

    # fmt: off
    @njit(cache=True, nogil=True, fastmath=True)
    def search(  # type: ignore[no-untyped-def]  # numba types these at compile time
        queries, mean, fdata, hdata, codes, lut, residual, layer0, upper_nodes, upper_levels,
        upper_starts, upper, entry, max_level, ef, depth, ids, scores, out_ids, out_scores,
        visited, tag_state, allowed, rows, max_scored, status,
    ):
        d = queries.shape[1]
        # the 8-bit query is padded to the codes' width: d bytes, or 2h for 4-bit codes
        q8_width = (2 * ((d + 1) // 2) if four_bit else d) if quantize else 0
        q, q8s, qscales, qsums, qmus = _query_terms(queries, mean, lvq, l2, q8_width)
        if mode == SCAN:
            _scan_rows(
                q, q8s, qscales, qsums, qmus, kind, l2, fdata, hdata, codes, lut, rows, ef,
                ids, scores,
            )
        elif mode == FILTERED:
            _filtered_batch(
                q, q8s, qscales, qsums, qmus, kind, l2, fdata, hdata, codes, lut, layer0,
                upper_nodes, upper_levels, upper_starts, upper, entry, max_level, ef, allowed,
                max_scored, ids, scores, visited, tag_state, status,
            )
        else:
            _search_batch(
                q, q8s, qscales, qsums, qmus, kind, l2, fdata, hdata, codes, lut, layer0,
                upper_nodes, upper_levels, upper_starts, upper, entry, max_level, ef, ids,
                scores, visited, tag_state,
            )
        if residual_bits:
            _rerank_residual(
                q, qsums, qmus, l2, final_kind, codes, residual, residual_bits, lut, ids,
                scores, depth,
            )
        elif final_kind >= 0:
            _rescore(
                q, q8s, qscales, qsums, qmus, final_kind, l2, fdata, hdata, codes, lut, ids,
                out_ids, out_scores,
            )
    # fmt: on

    return search


_NO_ROWS = np.zeros(1, np.int64)
_NO_MASK = np.zeros(1, np.uint8)


def graph_search(  # type: ignore[no-untyped-def]  # numba types these at compile time
    queries,
    mean,
    kind,
    l2,
    residual_bits,
    final_kind,
    *rest,
    mode=GRAPH,
    allowed=None,
    rows=None,
    max_scored=0,
    status=None,
) -> None:
    """Beam-search every query (float32 [nq, d], normalised for ``cos``; ``mean`` the LVQ
    mean, float32 [d], ignored by the float kinds) with the kernel specialised for the
    storage ``kind`` and metric, then finish as :func:`_specialise` says. ``rest``: fdata,
    hdata, codes, lut, residual, layer0, upper_nodes, upper_levels, upper_starts, upper, entry,
    max_level, ef, depth, ids, scores [nq, ef] (the beam, re-ranked in place), out_ids,
    out_scores [nq, k] (written by a re-score only), visited, tag_state (see
    :func:`_search_batch`).

    ``mode`` FILTERED searches the graph for rows where ``allowed`` (uint8 [n]) is 1, giving
    up on a query (``status[qi] = 1``) past ``max_scored`` scored rows; SCAN scores ``rows``
    (int64) exactly."""
    search = _specialise(int(kind), bool(l2), int(residual_bits), int(final_kind), int(mode))
    if status is None:
        status = np.zeros(len(queries), np.uint8)
    search(
        queries, mean, *rest, _NO_MASK if allowed is None else allowed,
        _NO_ROWS if rows is None else rows, int(max_scored), status,
    )  # fmt: skip
