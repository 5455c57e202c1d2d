"""Compiled parts of the MUVERA encoder (:mod:`glint.index.fde`).

The matrix products (SimHash signs and the ±1 projections of every token, for all repetitions
at once) run in BLAS; what is left is scattering each token's projected block into its
partition and, for documents, averaging and filling empty partitions. That is a loop over
tokens with a data-dependent destination, so it is compiled here, one span of documents per
call (the caller runs spans on its own threads; these functions release the GIL).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always", nogil=True)
def _popcount(x: np.uint32) -> int:
    count = 0
    while x:
        x &= x - np.uint32(1)
        count += 1
    return count


@njit(nogil=True, fastmath=True)
def scatter_blocks(
    proj: np.ndarray,
    parts: np.ndarray,
    signs: np.ndarray,
    offsets: np.ndarray,
    k_sim: int,
    dim_proj: int,
    average: bool,
    fill: bool,
    out: np.ndarray,
) -> None:
    """Accumulate the FDE of each document (or query) of a span.

    ``proj`` float32 [T, r·dim_proj]: every token projected for every repetition;
    ``parts`` int32 [T, r]: the token's partition per repetition (Gray-decoded);
    ``signs`` uint32 [T, r]: the token's raw sign bits per repetition;
    ``offsets`` int64 [n + 1] into the token rows; ``out`` float32 [n, r·2^k_sim·dim_proj]
    (zeroed by the caller). ``average`` divides each partition by its token count (documents);
    ``fill`` gives an empty partition the projection of the token whose sign bits are nearest
    in Hamming distance to the partition's own (the Gray code of its index).
    """
    reps = parts.shape[1]
    buckets = 1 << k_sim
    counts = np.zeros(buckets, np.int64)
    for i in range(offsets.shape[0] - 1):
        first, last = offsets[i], offsets[i + 1]
        for r in range(reps):
            counts[:] = 0
            base = r * buckets * dim_proj
            src = r * dim_proj
            for t in range(first, last):
                p = parts[t, r]
                counts[p] += 1
                dst = base + p * dim_proj
                for j in range(dim_proj):
                    out[i, dst + j] += proj[t, src + j]
            if not average:
                continue
            for p in range(buckets):
                dst = base + p * dim_proj
                if counts[p] > 0:
                    inv = np.float32(1.0) / np.float32(counts[p])
                    for j in range(dim_proj):
                        out[i, dst + j] *= inv
                elif fill and last > first:
                    pattern = np.uint32(p ^ (p >> 1))
                    best, best_t = 1 << 30, first
                    for t in range(first, last):
                        dist = _popcount(signs[t, r] ^ pattern)
                        if dist < best:
                            best, best_t = dist, t
                    for j in range(dim_proj):
                        out[i, dst + j] = proj[best_t, src + j]


@njit(nogil=True, fastmath=True)
def count_sketch(fde: np.ndarray, buckets: np.ndarray, signs: np.ndarray, out: np.ndarray) -> None:
    """``out[i, buckets[j]] += signs[j] · fde[i, j]`` (``out`` zeroed by the caller)."""
    for i in range(fde.shape[0]):
        for j in range(fde.shape[1]):
            out[i, buckets[j]] += signs[j] * fde[i, j]
