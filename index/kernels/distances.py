"""Scores of one prepared query against one stored vector, for every storage kind.

All scores are larger-is-better: the inner product, or the negated squared L2 distance.

A prepared query (see :func:`glint.index.storage_kinds.prepare`) is float32 ``q`` [dq] plus
two scalars: for ``ip`` on LVQ, ``qsum = Σq`` and ``qmu = <q, μ>``; for ``l2`` on LVQ, ``q``
is already ``q - μ``. The query's length is the true dimension ``d``; 4-bit records hold
``h = ceil(d / 2)`` code bytes (dimension ``t`` low, ``t + h`` high).

Storage kinds: ``F32`` (float32 rows), ``F16`` (float16 bit patterns as uint16, decoded
through ``lut``), ``LVQ8`` and ``LVQ4`` (records of codes + float16 Δ and l, see
:mod:`glint.index.lvq`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

F32, F16, LVQ8, LVQ4 = 0, 1, 2, 3


@njit(inline="always", fastmath=True, nogil=True)
def _half(rec: np.ndarray, pos: int, lut: np.ndarray) -> np.float32:
    return lut[np.int64(rec[pos]) | (np.int64(rec[pos + 1]) << 8)]


@njit(inline="always", fastmath=True, nogil=True)
def score(
    kind: int,
    l2: bool,
    q: np.ndarray,
    qsum: float,
    qmu: float,
    fdata: np.ndarray,
    hdata: np.ndarray,
    codes: np.ndarray,
    lut: np.ndarray,
    i: int,
) -> float:
    """Score of the prepared query against stored vector ``i``."""
    s = np.float32(0.0)
    if kind == F32:
        row = fdata[i]
        if l2:
            for j in range(row.shape[0]):
                diff = q[j] - row[j]
                s += diff * diff
            return -s
        for j in range(row.shape[0]):
            s += q[j] * row[j]
        return s
    if kind == F16:
        hrow = hdata[i]
        if l2:
            for j in range(hrow.shape[0]):
                diff = q[j] - lut[hrow[j]]
                s += diff * diff
            return -s
        for j in range(hrow.shape[0]):
            s += q[j] * lut[hrow[j]]
        return s
    rec = codes[i]
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    if kind == LVQ8:
        if l2:
            for j in range(nb):
                diff = q[j] - low - delta * np.float32(rec[j])
                s += diff * diff
            return -s
        for j in range(nb):
            s += q[j] * np.float32(rec[j])
        return delta * s + low * qsum + qmu
    # LVQ4: byte t = dim t (low nibble) and dim t + nb (high nibble); odd d leaves one tail
    paired = q.shape[0] - nb
    if l2:
        for t in range(paired):
            b = rec[t]
            d0 = q[t] - low - delta * np.float32(b & 15)
            d1 = q[t + nb] - low - delta * np.float32(b >> 4)
            s += d0 * d0 + d1 * d1
        if paired < nb:
            d0 = q[nb - 1] - low - delta * np.float32(rec[nb - 1] & 15)
            s += d0 * d0
        return -s
    for t in range(paired):
        b = rec[t]
        s += q[t] * np.float32(b & 15) + q[t + nb] * np.float32(b >> 4)
    if paired < nb:
        s += q[nb - 1] * np.float32(rec[nb - 1] & 15)
    return delta * s + low * qsum + qmu


@njit(inline="always", fastmath=True, nogil=True)
def residual_score(
    l2: bool,
    q: np.ndarray,
    qsum: float,
    qmu: float,
    primary_kind: int,
    codes: np.ndarray,
    residual: np.ndarray,
    residual_bits: int,
    lut: np.ndarray,
    i: int,
) -> float:
    """Score against the two-level reconstruction l + Δc + Δ(r / (2^B2 - 1) - 1/2)."""
    rec = codes[i]
    res = residual[i]
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    step = delta / np.float32((1 << residual_bits) - 1)
    base = low - delta * np.float32(0.5)
    dim = q.shape[0]
    half = nb  # 4-bit records: dimension j < half is a low nibble, j >= half a high one
    s = np.float32(0.0)
    for j in range(dim):
        if primary_kind == LVQ8:
            c1 = np.float32(rec[j])
        else:
            c1 = np.float32(rec[j] & 15) if j < half else np.float32(rec[j - half] >> 4)
        if residual_bits == 8:
            c2 = np.float32(res[j])
        else:
            c2 = np.float32(res[j] & 15) if j < half else np.float32(res[j - half] >> 4)
        if l2:
            diff = q[j] - (base + delta * c1 + step * c2)
            s += diff * diff
        else:
            s += q[j] * (delta * c1 + step * c2)
    if l2:
        return -s
    return s + base * qsum + qmu
