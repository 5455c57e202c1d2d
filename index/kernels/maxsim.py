"""Compiled multi-vector kernels: exact Chamfer (MaxSim) re-ranking of candidate documents on
stored tokens (float32, float16 or LVQ-8), and Ward token pooling."""

from __future__ import annotations

import numpy as np
from numba import njit

from .distances import F16, F32, _half


@njit(nogil=True, fastmath=True)
def gather_tokens(
    rows: np.ndarray,
    doc_off: np.ndarray,
    kind: int,
    fdata: np.ndarray,
    hdata: np.ndarray,
    codes: np.ndarray,
    lut: np.ndarray,
    out: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
) -> int:
    """Decode the stored tokens of documents ``rows`` (-1 = skip) into ``out`` float32 rows,
    one document after another, and record each one's rows of ``out`` in ``starts`` and
    ``ends`` (-1 for a skipped row). Returns the number of token rows written. LVQ tokens
    are decoded without the mean (the caller adds ``<q, μ>``) with ``lut`` the float16
    powers table, float16 tokens through ``lut`` the full float16 table (what
    ``VectorStore.kernel_args`` gives for each)."""
    d = out.shape[1]
    pos = 0
    for c in range(rows.shape[0]):
        row = rows[c]
        if row < 0:
            starts[c] = -1
            ends[c] = -1
            continue
        starts[c] = pos
        for t in range(doc_off[row], doc_off[row + 1]):
            if kind == F32:
                for j in range(d):
                    out[pos, j] = fdata[t, j]
            elif kind == F16:
                for j in range(d):
                    out[pos, j] = lut[hdata[t, j]]
            else:
                rec = codes[t]
                delta = _half(rec, d, lut)
                low = _half(rec, d + 2, lut)
                for j in range(d):
                    out[pos, j] = delta * np.float32(rec[j]) + low
            pos += 1
        ends[c] = pos
    return pos


@njit(nogil=True, fastmath=True)
def chamfer_from_sims(
    sims: np.ndarray, starts: np.ndarray, ends: np.ndarray, out: np.ndarray
) -> None:
    """``out[c]`` = Σ over query tokens (rows of ``sims`` [tq, total]) of the largest entry in
    document ``c``'s columns ``starts[c]:ends[c]`` (``-inf`` where ``starts[c] < 0``)."""
    for c in range(starts.shape[0]):
        first, last = starts[c], ends[c]
        if first < 0:
            out[c] = -np.inf
            continue
        acc = np.float32(0.0)
        for j in range(sims.shape[0]):
            best = sims[j, first]
            for t in range(first + 1, last):
                if sims[j, t] > best:
                    best = sims[j, t]
            acc += best
        out[c] = acc


@njit(nogil=True, fastmath=False)
def ward_pool(
    tokens: np.ndarray, offsets: np.ndarray, factor: int, out_off: np.ndarray, out: np.ndarray
) -> None:
    """Pool each set's tokens into ``ceil(n / factor)`` Ward clusters and write their means.

    Agglomerative clustering with Ward's criterion: start from single tokens and repeatedly
    merge the two clusters whose union raises the within-cluster sum of squares least,
    keeping merge costs current with the Lance-Williams update. Ties go to the lowest pair.
    ``out_off`` [n + 1] are the output offsets (computed by the caller from the same rule);
    cluster means are written in order of each cluster's first token.
    """
    d = tokens.shape[1]
    for i in range(offsets.shape[0] - 1):
        first, last = offsets[i], offsets[i + 1]
        n = last - first
        keep = out_off[i + 1] - out_off[i]
        x = tokens[first:last].astype(np.float64)
        if keep >= n:
            for a in range(n):
                for j in range(d):
                    out[out_off[i] + a, j] = x[a, j]
            continue
        cost = np.full((n, n), np.inf)
        for a in range(n):
            for b in range(a + 1, n):
                s = 0.0
                for j in range(d):
                    diff = x[a, j] - x[b, j]
                    s += diff * diff
                cost[a, b] = s * 0.5
                cost[b, a] = s * 0.5
        size = np.ones(n, np.int64)
        label = np.arange(n)
        active = np.ones(n, np.bool_)
        clusters = n
        while clusters > keep:
            lo, ba, bb = np.inf, -1, -1
            for a in range(n):
                if not active[a]:
                    continue
                for b in range(a + 1, n):
                    if active[b] and cost[a, b] < lo:
                        lo, ba, bb = cost[a, b], a, b
            na, nb = size[ba], size[bb]
            for c in range(n):
                if active[c] and c != ba and c != bb:
                    nc = size[c]
                    merged = (
                        (nc + na) * cost[c, ba] + (nc + nb) * cost[c, bb] - nc * cost[ba, bb]
                    ) / (nc + na + nb)
                    cost[c, ba] = merged
                    cost[ba, c] = merged
            active[bb] = False
            size[ba] = na + nb
            for t in range(n):
                if label[t] == bb:
                    label[t] = ba
            clusters -= 1
        slot = np.full(n, -1, np.int64)
        sums = np.zeros((keep, d))
        counts = np.zeros(keep, np.int64)
        used = 0
        for t in range(n):
            root = label[t]
            if slot[root] < 0:
                slot[root] = used
                used += 1
            s = slot[root]
            counts[s] += 1
            for j in range(d):
                sums[s, j] += x[t, j]
        for s in range(keep):
            for j in range(d):
                out[out_off[i] + s, j] = sums[s, j] / counts[s]
