"""MUVERA fixed dimensional encodings (FDEs) of token sets.

An FDE turns a set of token vectors into one vector whose inner product with another set's FDE
approximates their Chamfer (MaxSim) similarity, the sum over query tokens of the best inner
product with any document token. Per repetition ``r`` of ``r_reps``:

- ``k_sim`` Gaussian hyperplanes split space into ``2^k_sim`` partitions. A token's sign bits
  (first hyperplane = most significant bit) are read as a Gray code, so partitions with
  neighbouring indices differ in one sign;
- each token is projected to ``dim_proj`` dimensions by a random ±1 matrix scaled by
  ``1/√dim_proj`` (``dim_proj=0``: no projection, the tokens' own dimensions). The matrix is
  a randomised Hadamard sketch: ``dim_proj`` random columns of a Sylvester-Hadamard matrix
  with randomly signed and permuted rows. Its entries are ±1 like an i.i.d. sign matrix, but
  its columns are orthogonal (exactly when ``dim`` is a power of two), which lowers the
  variance of projected inner products;
- a query **sums** the projected tokens of each partition, a document **averages** them;
- an empty document partition takes the projected token whose sign bits are nearest in Hamming
  distance to the partition's (documents only: a query's empty partition stays zero).

The repetitions are concatenated (``r_reps · 2^k_sim · dim_proj`` dimensions); ``final_dim``
optionally reduces that with a count sketch (each coordinate added, with a random sign, into
one of ``final_dim`` buckets), which keeps inner products unbiased.

Every random matrix is drawn from ``numpy.random.default_rng((seed, r, purpose))``, so the
same seed gives the same bytes; an index stores the matrices themselves as well, so queries
encoded after a reload match the documents whatever numpy's generators do in the future.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import FormatError
from .kernels.fde import count_sketch, scatter_blocks
from .threads import run_spans

__all__ = ["FDEEncoder", "FDEParams"]

_HYPERPLANES, _PROJECTION, _SKETCH_BUCKETS, _SKETCH_SIGNS = 0, 1, 2, 3
# Tokens per BLAS call: bounds the [T, r·dim_proj] projection buffer of a span.
_TOKEN_CHUNK = 16384


@dataclass(frozen=True)
class FDEParams:
    """What determines an encoding: token ``dim`` and the MUVERA parameters."""

    dim: int
    k_sim: int = 4
    dim_proj: int = 16
    r_reps: int = 10
    final_dim: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "dim": self.dim >= 1,
            "k_sim": 0 <= self.k_sim <= 30,
            "dim_proj": self.dim_proj >= 0,
            "r_reps": self.r_reps >= 1,
            "final_dim": self.final_dim >= 0,
            "seed": self.seed >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"FDE parameter {name}={getattr(self, name)!r} is out of range")

    @property
    def proj_dim(self) -> int:
        """Dimensions per partition block: ``dim_proj``, or ``dim`` without projection."""
        return self.dim_proj or self.dim

    @property
    def raw_dim(self) -> int:
        """``r_reps · 2^k_sim · proj_dim``: the FDE before the optional count sketch."""
        return self.r_reps * (1 << self.k_sim) * self.proj_dim

    @property
    def out_dim(self) -> int:
        return self.final_dim or self.raw_dim


def _rng(seed: int, rep: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng((seed, rep, purpose))


def _sign_sketch(dim: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random ±1 matrix [dim, width] with orthogonal columns where it can: ``width``
    random columns of the Sylvester-Hadamard matrix of order 2^ceil(log2 dim), whose rows
    are permuted, cut to ``dim`` and randomly signed. Wider than that order: i.i.d. signs."""
    order = 1 << max(0, int(np.ceil(np.log2(dim))))
    if width > order:
        return np.where(rng.random((dim, width)) < 0.5, -1.0, 1.0)
    hadamard = np.ones((1, 1))
    while hadamard.shape[0] < order:
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    rows = hadamard[rng.permutation(order)[:dim]]
    signs = np.where(rng.random(dim) < 0.5, -1.0, 1.0)
    return np.asarray(rows[:, rng.permutation(order)[:width]] * signs[:, None])


class FDEEncoder:
    """Encodes token sets (flat ``tokens`` [T, dim] with ``offsets`` [n + 1]) into FDEs."""

    def __init__(self, params: FDEParams, arrays: Mapping[str, np.ndarray] | None = None):
        self.params = params
        p = params
        if arrays is None:
            arrays = self.draw(params)
        self.hyperplanes = np.ascontiguousarray(arrays["hyperplanes"], np.float32)
        self.projection = (
            np.ascontiguousarray(arrays["projection"], np.float32)
            if "projection" in arrays
            else None
        )
        self.sketch_buckets = (
            np.ascontiguousarray(arrays["sketch_buckets"], np.int64)
            if "sketch_buckets" in arrays
            else None
        )
        self.sketch_signs = (
            np.ascontiguousarray(arrays["sketch_signs"], np.float32)
            if "sketch_signs" in arrays
            else None
        )
        want = {
            "hyperplanes": (p.dim, p.r_reps * p.k_sim),
            "projection": (p.dim, p.r_reps * p.dim_proj) if p.dim_proj else None,
            "sketch_buckets": (p.raw_dim,) if p.final_dim else None,
            "sketch_signs": (p.raw_dim,) if p.final_dim else None,
        }
        for name, shape in want.items():
            got = getattr(self, name)
            if (got is None) != (shape is None) or (got is not None and got.shape != shape):
                have = None if got is None else got.shape
                raise FormatError(f"FDE array {name} has shape {have}, expected {shape}")
        if self.sketch_buckets is not None and (
            self.sketch_buckets.min() < 0 or self.sketch_buckets.max() >= p.final_dim
        ):
            raise FormatError("FDE array sketch_buckets holds buckets outside final_dim")

    @staticmethod
    def draw(params: FDEParams) -> dict[str, np.ndarray]:
        """The random matrices of ``params``, drawn from its seed (same seed, same bytes)."""
        p = params
        planes = [
            _rng(p.seed, r, _HYPERPLANES).standard_normal((p.dim, p.k_sim), dtype=np.float32)
            for r in range(p.r_reps)
        ]
        out: dict[str, np.ndarray] = {"hyperplanes": np.concatenate(planes, axis=1)}
        if p.dim_proj:
            scale = np.float32(1.0 / np.sqrt(p.dim_proj))
            blocks = [
                _sign_sketch(p.dim, p.dim_proj, _rng(p.seed, r, _PROJECTION))
                for r in range(p.r_reps)
            ]
            out["projection"] = (np.concatenate(blocks, axis=1) * scale).astype(np.float32)
        if p.final_dim:
            rng = _rng(p.seed, 0, _SKETCH_BUCKETS)
            out["sketch_buckets"] = rng.integers(0, p.final_dim, p.raw_dim, dtype=np.int64)
            signs = _rng(p.seed, 0, _SKETCH_SIGNS).random(p.raw_dim) < 0.5
            out["sketch_signs"] = np.where(signs, -1.0, 1.0).astype(np.float32)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The matrices to store with an index (see :meth:`__init__`'s ``arrays``)."""
        found = {
            "hyperplanes": self.hyperplanes,
            "projection": self.projection,
            "sketch_buckets": self.sketch_buckets,
            "sketch_signs": self.sketch_signs,
        }
        return {name: value for name, value in found.items() if value is not None}

    # -- encoding -------------------------------------------------------------------------
    def encode_queries(
        self, tokens: np.ndarray, offsets: np.ndarray, *, threads: int = 1
    ) -> np.ndarray:
        """Query FDEs, float32 [n, out_dim]: projected tokens **summed** per partition."""
        return self._encode(tokens, offsets, average=False, fill=False, threads=threads)

    def encode_documents(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        *,
        fill_empty: bool = True,
        threads: int = 1,
    ) -> np.ndarray:
        """Document FDEs, float32 [n, out_dim]: projected tokens **averaged** per partition,
        empty partitions filled from the nearest token (unless ``fill_empty`` is false)."""
        return self._encode(tokens, offsets, average=True, fill=fill_empty, threads=threads)

    def _encode(
        self, tokens: np.ndarray, offsets: np.ndarray, *, average: bool, fill: bool, threads: int
    ) -> np.ndarray:
        p = self.params
        offsets = np.asarray(offsets, dtype=np.int64)
        n = offsets.shape[0] - 1
        out = np.zeros((n, p.out_dim), np.float32)

        # Chunk boundaries depend only on the offsets, never on the thread count, so that
        # every chunk's matrix products (and so the bytes of the result) are the same.
        chunks, start = [], 0
        while start < n:
            stop = self._chunk_end(offsets, start, n)
            chunks.append((start, stop))
            start = stop

        def run(span: tuple[int, int]) -> None:
            for a, b in chunks[span[0] : span[1]]:
                out[a:b] = self._encode_chunk(tokens, offsets[a : b + 1], average, fill)

        run_spans(len(chunks), threads, run)
        return out

    @staticmethod
    def _chunk_end(offsets: np.ndarray, start: int, end: int) -> int:
        """The end of a run of documents from ``start`` holding at most ``_TOKEN_CHUNK``
        tokens (at least one document)."""
        limit = offsets[start] + _TOKEN_CHUNK
        stop = int(np.searchsorted(offsets, limit, side="right")) - 1
        return min(end, max(start + 1, stop))

    def _encode_chunk(
        self, tokens: np.ndarray, offsets: np.ndarray, average: bool, fill: bool
    ) -> np.ndarray:
        p = self.params
        first, last = int(offsets[0]), int(offsets[-1])
        x = np.ascontiguousarray(tokens[first:last], dtype=np.float32)
        local = offsets - first
        signs, parts = self._partitions(x)
        proj = x @ self.projection if self.projection is not None else self._tile(x)
        raw = np.zeros((local.shape[0] - 1, p.raw_dim), np.float32)
        scatter_blocks(proj, parts, signs, local, p.k_sim, p.proj_dim, average, fill, raw)
        if not p.final_dim:
            return raw
        assert self.sketch_buckets is not None and self.sketch_signs is not None
        sketched = np.zeros((raw.shape[0], p.final_dim), np.float32)
        count_sketch(raw, self.sketch_buckets, self.sketch_signs, sketched)
        return sketched

    def _tile(self, x: np.ndarray) -> np.ndarray:
        """Without projection every repetition sees the tokens themselves."""
        return np.ascontiguousarray(np.tile(x, (1, self.params.r_reps)))

    def _partitions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sign bits uint32 [T, r], partition int32 [T, r]) of every token per repetition."""
        p = self.params
        t = x.shape[0]
        if p.k_sim == 0:
            zeros = np.zeros((t, p.r_reps), np.uint32)
            return zeros, zeros.astype(np.int32)
        positive = (x @ self.hyperplanes > 0).reshape(t, p.r_reps, p.k_sim)
        weights = (1 << np.arange(p.k_sim - 1, -1, -1)).astype(np.uint32)
        gray = (positive.astype(np.uint32) * weights).sum(axis=2, dtype=np.uint32)
        binary = gray.copy()
        shift = gray >> 1
        while shift.any():
            binary ^= shift
            shift >>= 1
        return np.ascontiguousarray(gray), np.ascontiguousarray(binary.astype(np.int32))
