"""Scores of one prepared query against one stored vector, for every storage kind.

All scores are larger-is-better: the inner product, or the negated squared L2 distance.

A prepared query (see :func:`glint.index.storage_kinds.prepare`) is float32 ``q`` [dq] plus
two scalars: for ``ip`` on LVQ, ``qsum = Σq`` and ``qmu = <q, μ>``; for ``l2`` on LVQ, ``q``
is already ``q - μ``. The query's length is the true dimension ``d``; 4-bit records hold
``h = ceil(d / 2)`` code bytes (dimension ``t`` low, ``t + h`` high).

Storage kinds: ``F32`` (float32 rows), ``F16`` (float16 bit patterns as uint16, decoded
through ``lut``, the 65,536-entry table of :func:`~glint.index.lvq.f16_table`), ``LVQ8`` and
``LVQ4`` (records of codes + float16 Δ and l, see :mod:`glint.index.lvq`; ``lut`` is then the
32-entry table of :func:`~glint.index.lvq.f16_powers` that decodes the two constants).

``LVQ8_INT`` and ``LVQ4_INT`` score the same records for inner products with integer
arithmetic (:mod:`.intdot`): the query also comes as int8 ``q8`` with ``q ≈ qscale · q8``, and
``<q, l + Δc> ≈ Δ · qscale · <q8, c> + l · Σq``. Other kinds ignore ``q8`` and ``qscale``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .intdot import BLOCK, dot_u4_i8, dot_u8_i8
from .prefetch import prefetch_row

F32, F16, LVQ8, LVQ4, LVQ8_INT, LVQ4_INT = 0, 1, 2, 3, 4, 5


@njit(inline="always", fastmath=True, nogil=True)
def _f16(bits: int, lut: np.ndarray) -> np.float32:
    """The float16 with bit pattern ``bits`` as float32; ``lut[e]`` is 2^(e - 25).

    A normal number is (1024 + mantissa)·2^(exponent - 25), a subnormal mantissa·2^-24. The
    32-entry table stays in L1, where a 65,536-entry table would miss the cache.
    """
    exponent = (bits >> 10) & 31
    mantissa = bits & 1023
    value = np.float32(mantissa + (1024 if exponent > 0 else 0)) * lut[max(exponent, 1)]
    return -value if bits & 32768 else value


@njit(inline="always", fastmath=True, nogil=True)
def _half(rec: np.ndarray, pos: int, lut: np.ndarray) -> np.float32:
    return _f16(np.int64(rec[pos]) | (np.int64(rec[pos + 1]) << 8), lut)


@njit(inline="always", fastmath=True, nogil=True)
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


@njit(inline="always", fastmath=True, nogil=True)
def _f16_row(l2: bool, q: np.ndarray, row: np.ndarray, lut: np.ndarray) -> float:
    s = np.float32(0.0)
    if l2:
        for j in range(row.shape[0]):
            diff = q[j] - lut[row[j]]
            s += diff * diff
        return -s
    for j in range(row.shape[0]):
        s += q[j] * lut[row[j]]
    return s


@njit(inline="always", fastmath=True, nogil=True)
def _lvq8(
    l2: bool, q: np.ndarray, qsum: float, qmu: float, rec: np.ndarray, lut: np.ndarray
) -> float:
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


@njit(inline="always", fastmath=True, nogil=True)
def _lvq4(
    l2: bool, q: np.ndarray, qsum: float, qmu: float, rec: np.ndarray, lut: np.ndarray
) -> float:
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
def _lvq8_int(
    q8: np.ndarray, qscale: float, qsum: float, qmu: float, rec: np.ndarray, lut: np.ndarray
) -> float:
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    blocks = nb // BLOCK
    dot: int = dot_u8_i8(rec, q8, blocks)  # type: ignore[call-arg]  # numba supplies the typing context
    for j in range(blocks * BLOCK, nb):
        dot += np.int32(rec[j]) * np.int32(q8[j])
    return delta * np.float32(qscale) * np.float32(dot) + low * qsum + qmu


@njit(inline="always", nogil=True)
def _lvq4_int(
    q8: np.ndarray, qscale: float, qsum: float, qmu: float, rec: np.ndarray, lut: np.ndarray
) -> float:
    # q8 holds the low dimensions' bytes at [0, nb) and the high ones' at [nb, 2 nb)
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    blocks = nb // BLOCK
    dot: int = dot_u4_i8(rec, q8, blocks, nb)  # type: ignore[call-arg]  # numba supplies the typing context
    for t in range(blocks * BLOCK, nb):
        byte = np.int32(rec[t])
        dot += (byte & 15) * np.int32(q8[t]) + (byte >> 4) * np.int32(q8[nb + t])
    return delta * np.float32(qscale) * np.float32(dot) + low * qsum + qmu


@njit(inline="always", nogil=True)
def score(
    kind: int,
    l2: bool,
    q: np.ndarray,
    q8: np.ndarray,
    qscale: float,
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
        return _f16_row(l2, q, hdata[i], lut)
    if kind == LVQ8:
        return _lvq8(l2, q, qsum, qmu, codes[i], lut)
    if kind == LVQ4:
        return _lvq4(l2, q, qsum, qmu, codes[i], lut)
    if kind == LVQ8_INT:
        return _lvq8_int(q8, qscale, qsum, qmu, codes[i], lut)
    return _lvq4_int(q8, qscale, qsum, qmu, codes[i], lut)


@njit(inline="always", nogil=True)
def prefetch_vector(
    kind: int, fdata: np.ndarray, hdata: np.ndarray, codes: np.ndarray, i: int
) -> None:
    """Start loading stored vector ``i`` into the cache."""
    if kind == F32:
        prefetch_row(fdata, i)
    elif kind == F16:
        prefetch_row(hdata, i)
    else:
        prefetch_row(codes, i)


@njit(inline="always", fastmath=True, nogil=True)
def _dot_u8(q: np.ndarray, codes: np.ndarray) -> np.float32:
    """Σ q[j] · codes[j] over ``codes``' length (byte codes in dimension order)."""
    s = np.float32(0.0)
    for j in range(codes.shape[0]):
        s += q[j] * np.float32(codes[j])
    return s


@njit(inline="always", fastmath=True, nogil=True)
def _dot_u4(q: np.ndarray, packed: np.ndarray) -> np.float32:
    """Σ q[j] · c_j for split-nibble codes: byte t holds dimension t (low nibble) and
    t + len(packed) (high nibble); ``q`` may be shorter than 2·len(packed) (odd d)."""
    q_high = q[packed.shape[0] :]
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    for t in range(packed.shape[0]):
        s0 += q[t] * np.float32(packed[t] & np.uint8(15))
    for t in range(q_high.shape[0]):
        s1 += q_high[t] * np.float32(packed[t] >> np.uint8(4))
    return s0 + s1


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
    """Score against the two-level reconstruction l + Δc + Δ(r / (2^B2 - 1) - 1/2), for a
    4-bit primary level (the residual storages are lvq4x4 and lvq4x8).

    For inner products it is Δ·<q, c> + step·<q, r> + (l - Δ/2)·Σq + <q, μ>: two plain dot
    products of the query with byte codes, which vectorise. 8-bit residuals are in dimension
    order, 4-bit ones in the primary codes' split-nibble layout."""
    rec = codes[i]
    nb = rec.shape[0] - 4
    delta = _half(rec, nb, lut)
    low = _half(rec, nb + 2, lut)
    step = delta / np.float32((1 << residual_bits) - 1)
    base = low - delta * np.float32(0.5)
    primary = rec[:nb]
    res = residual[i]
    if not l2:
        fine = _dot_u8(q, res[: q.shape[0]]) if residual_bits == 8 else _dot_u4(q, res)
        return delta * _dot_u4(q, primary) + step * fine + base * qsum + qmu
    q_high = q[nb:]
    mask = np.uint8(15)
    shift = np.uint8(4)
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    # dimensions [0, nb): low nibbles; [nb, d): high nibbles
    for t in range(primary.shape[0]):
        c2 = np.float32(res[t]) if residual_bits == 8 else np.float32(res[t] & mask)
        diff = q[t] - (base + delta * np.float32(primary[t] & mask) + step * c2)
        s0 += diff * diff
    res_high = res[nb:] if residual_bits == 8 else res
    for t in range(q_high.shape[0]):
        c2 = np.float32(res_high[t]) if residual_bits == 8 else np.float32(res_high[t] >> shift)
        diff = q_high[t] - (base + delta * np.float32(primary[t] >> shift) + step * c2)
        s1 += diff * diff
    return -(s0 + s1)
