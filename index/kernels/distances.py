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

from .prefetch import prefetch_row

F32, F16, LVQ8, LVQ4 = 0, 1, 2, 3


@njit(inline="always", fastmath=True, nogil=True)
def _half(rec: np.ndarray, pos: int, lut: np.ndarray) -> np.float32:
    return lut[np.int64(rec[pos]) | (np.int64(rec[pos + 1]) << 8)]


@njit(fastmath=True, nogil=True)
def _f32(l2: bool, q: np.ndarray, row: np.ndarray) -> float:
    s = np.float32(0.0)
    if l2:
        for j in range(row.shape[0]):
            diff = q[j] - row[j]
            s += diff * diff
        return -s
    for j in range(row.shape[0]):
        s += q[j] * row[j]
    return s


@njit(fastmath=True, nogil=True)
def _f16(l2: bool, q: np.ndarray, row: np.ndarray, lut: np.ndarray) -> float:
    s = np.float32(0.0)
    if l2:
        for j in range(row.shape[0]):
            diff = q[j] - lut[row[j]]
            s += diff * diff
        return -s
    for j in range(row.shape[0]):
        s += q[j] * lut[row[j]]
    return s


@njit(fastmath=True, nogil=True)
def _lvq8(l2: bool, q: np.ndarray, qsum: float, qmu: float, rec: np.ndarray, lut: np.ndarray) -> float:
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    codes = rec[:nb]
    s = np.float32(0.0)
    if l2:
        for j in range(codes.shape[0]):
            diff = q[j] - low - delta * np.float32(codes[j])
            s += diff * diff
        return -s
    for j in range(codes.shape[0]):
        s += q[j] * np.float32(codes[j])
    return delta * s + low * qsum + qmu


@njit(fastmath=True, nogil=True)
def _lvq4(l2: bool, q: np.ndarray, qsum: float, qmu: float, rec: np.ndarray, lut: np.ndarray) -> float:
    # byte t = dim t (low nibble) and dim t + nb (high nibble); two loops vectorise where one
    # fused loop does not. The halves are slices so that no index can be negative (numba's
    # wrap-around check in a loop stops vectorisation). Odd d leaves the last high nibble unused.
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    codes = rec[:nb]
    q_high = q[nb:]
    mask = np.uint8(15)
    shift = np.uint8(4)
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    if l2:
        for t in range(codes.shape[0]):
            d0 = q[t] - low - delta * np.float32(codes[t] & mask)
            s0 += d0 * d0
        for t in range(q_high.shape[0]):
            d1 = q_high[t] - low - delta * np.float32(codes[t] >> shift)
            s1 += d1 * d1
        return -(s0 + s1)
    for t in range(codes.shape[0]):
        s0 += q[t] * np.float32(codes[t] & mask)
    for t in range(q_high.shape[0]):
        s1 += q_high[t] * np.float32(codes[t] >> shift)
    return delta * (s0 + s1) + low * qsum + qmu


@njit(inline="always", nogil=True)
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
    if kind == F32:
        return _f32(l2, q, fdata[i])
    if kind == F16:
        return _f16(l2, q, hdata[i], lut)
    if kind == LVQ8:
        return _lvq8(l2, q, qsum, qmu, codes[i], lut)
    return _lvq4(l2, q, qsum, qmu, codes[i], lut)


@njit(inline="always", nogil=True)
def prefetch_vector(kind: int, fdata: np.ndarray, hdata: np.ndarray, codes: np.ndarray, i: int) -> None:
    """Start loading stored vector ``i`` into the cache."""
    if kind == F32:
        prefetch_row(fdata, i)
    elif kind == F16:
        prefetch_row(hdata, i)
    else:
        prefetch_row(codes, i)


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
