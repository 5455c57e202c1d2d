"""Locally-adaptive Vector Quantization (LVQ) encoding.

Per the LVQ paper: subtract the dataset mean μ; per vector x' = x - μ take l = min(x'),
Δ = (max(x') - l) / (2^B - 1), both stored as float16 and rounded *before* encoding (l down, Δ
up, so every coordinate stays inside the representable range); codes c = round((x' - l) / Δ).
An optional residual level quantizes r = x' - (l + Δc) over [-Δ/2, Δ/2] with step
Δ / (2^B2 - 1) and is only used to re-score candidates.

Layout (chosen for the kernels in :mod:`glint.index.kernels.distances`): one record of
``code_bytes + 4`` bytes per vector, the codes then Δ and l as little-endian float16 bits, so
a distance touches one contiguous run of memory. 4-bit codes are split by halves: byte ``t``
holds dimension ``t`` in its low nibble and dimension ``t + h`` in its high nibble
(``h = ceil(d / 2)``), so the kernel reads the query in two contiguous streams; with an odd
dimension the last byte's high nibble is unused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["LVQCodes", "encode_lvq", "f16_powers", "f16_table", "parse_lvq_storage"]

_CHUNK = 32768
_F16_MAX = float(np.finfo(np.float16).max)


def parse_lvq_storage(storage: str) -> tuple[int, int]:
    """``lvq8`` -> (8, 0), ``lvq4x8`` -> (4, 8)."""
    body = storage.removeprefix("lvq")
    primary, _, residual = body.partition("x")
    return int(primary), int(residual or 0)


@dataclass(frozen=True)
class LVQCodes:
    """Encoded vectors: ``records`` uint8 [n, code_bytes + 4]; ``residual`` uint8 or None."""

    bits: int
    residual_bits: int
    dim: int
    mean: np.ndarray  # float32 [dim]
    records: np.ndarray  # uint8 [n, code_bytes + 4]
    residual: np.ndarray | None  # uint8 [n, dim] (8-bit) or [n, ceil(dim / 2)] (4-bit)

    @property
    def code_bytes(self) -> int:
        out: int = self.records.shape[1] - 4
        return out

    def constants(self) -> tuple[np.ndarray, np.ndarray]:
        """(Δ, l) as float32 [n] (exactly the stored float16 values)."""
        tail = np.ascontiguousarray(self.records[:, self.code_bytes :])
        halves = tail.view(np.float16).astype(np.float32)
        return halves[:, 0], halves[:, 1]

    def primary_codes(self) -> np.ndarray:
        """Unpacked primary codes, uint8 [n, dim] (for tests and inspection)."""
        return _unpack(self.records[:, : self.code_bytes], self.bits, self.dim)

    def decode(self, *, residual: bool = False) -> np.ndarray:
        """Reconstruct float32 [n, dim] vectors (tests and re-encoding only)."""
        delta, low = self.constants()
        x = low[:, None] + delta[:, None] * self.primary_codes().astype(np.float32)
        if residual and self.residual is not None:
            levels = (1 << self.residual_bits) - 1
            r = _unpack(self.residual, self.residual_bits, self.dim).astype(np.float32)
            x += delta[:, None] * (r / levels - 0.5)
        out: np.ndarray = x + self.mean
        return out


def _pack4(codes: np.ndarray) -> np.ndarray:
    n, d = codes.shape
    half = (d + 1) // 2
    padded = np.zeros((n, 2 * half), np.uint8)
    padded[:, :d] = codes
    out: np.ndarray = padded[:, :half] | (padded[:, half:] << 4)
    return out


def _unpack(packed: np.ndarray, bits: int, dim: int) -> np.ndarray:
    if bits == 8:
        return np.asarray(packed[:, :dim])
    return np.concatenate([packed & 15, packed >> 4], axis=1)[:, :dim]


def _round_constants(
    low: np.ndarray, high: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """float16 l (rounded down) and Δ (rounded up) so that [l, l + levels·Δ] covers [low, high]."""
    low16 = low.astype(np.float16)
    too_high = low16.astype(np.float32) > low
    low16[too_high] = np.nextafter(low16[too_high], np.float16(-np.inf))
    low32 = low16.astype(np.float32)
    delta16 = ((high - low32) / levels).astype(np.float16)
    short = low32 + delta16.astype(np.float32) * levels < high
    delta16[short] = np.nextafter(delta16[short], np.float16(np.inf))
    return low16, delta16


def _encode_chunk(
    xc: np.ndarray, bits: int, residual_bits: int
) -> tuple[np.ndarray, np.ndarray | None]:
    levels = (1 << bits) - 1
    low = xc.min(axis=1)
    high = xc.max(axis=1)
    low16, delta16 = _round_constants(low, high, levels)
    low32, delta32 = low16.astype(np.float32)[:, None], delta16.astype(np.float32)[:, None]
    safe = np.where(delta32 > 0, delta32, np.float32(1.0))
    codes = np.clip(np.rint((xc - low32) / safe), 0, levels).astype(np.uint8)
    packed = codes if bits == 8 else _pack4(codes)
    tail = np.stack([delta16, low16], axis=1).view(np.uint8).reshape(len(xc), 4)
    records = np.concatenate([packed, tail], axis=1)
    residual = None
    if residual_bits:
        r_levels = (1 << residual_bits) - 1
        r = xc - (low32 + delta32 * codes)
        step = safe / r_levels
        r_codes = np.clip(np.rint((r + safe / 2) / step), 0, r_levels).astype(np.uint8)
        residual = r_codes if residual_bits == 8 else _pack4(r_codes)
    return records, residual


def encode_lvq(
    x: np.ndarray, bits: int, residual_bits: int = 0, *, mean: np.ndarray | None = None
) -> LVQCodes:
    """Encode float32 [n, d] vectors with ``bits`` (4 or 8) and an optional residual level."""
    if bits not in (4, 8) or residual_bits not in (0, 4, 8):
        raise ValueError(f"unsupported LVQ bits {bits}x{residual_bits}")
    n, d = x.shape
    mu = x.mean(axis=0, dtype=np.float64).astype(np.float32) if mean is None else mean
    record_parts, residual_parts = [], []
    for start in range(0, n, _CHUNK):
        xc = np.asarray(x[start : start + _CHUNK], dtype=np.float32) - mu
        span = np.abs(xc).max(initial=0.0)
        if not np.isfinite(span) or span * 2 > _F16_MAX:
            raise InputError(
                f"vectors: values up to {span:.3g} from the mean exceed LVQ's float16 range; "
                "use storage=f32 or rescale the data"
            )
        records, residual = _encode_chunk(xc, bits, residual_bits)
        record_parts.append(records)
        if residual is not None:
            residual_parts.append(residual)
    return LVQCodes(
        bits=bits,
        residual_bits=residual_bits,
        dim=d,
        mean=mu,
        records=np.ascontiguousarray(np.concatenate(record_parts)),
        residual=np.ascontiguousarray(np.concatenate(residual_parts)) if residual_parts else None,
    )


def f16_powers() -> np.ndarray:
    """The 32 powers 2^(e - 25) that decode a float16 bit pattern arithmetically in the kernels
    (numba has no float16): see :func:`glint.index.kernels.distances._f16`."""
    out: np.ndarray = np.ldexp(np.float32(1.0), np.arange(32) - 25).astype(np.float32)
    return out


def f16_table() -> np.ndarray:
    """A 65,536-entry table: float16 bit pattern -> float32 (vectors stored as float16)."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
