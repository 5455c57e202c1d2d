"""The checks on a batch of token sets (multi-vector queries or documents).

A batch is stored flat: ``tokens`` [T, d] and ``offsets`` [n + 1], with set ``i`` at rows
``offsets[i]:offsets[i + 1]``. Every check raises a ``ValueError`` whose message starts with
``what`` and says what is wrong and where.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["check_offsets", "check_token_matrix", "check_token_sets"]


def check_token_matrix(tokens: object, *, what: str = "token sets") -> np.ndarray:
    """``tokens`` as an array, which must be 2-D ``[T, d]`` with at least one row (its dtype
    and values are not looked at)."""
    arr = np.asarray(tokens)
    if arr.ndim != 2:
        raise ValueError(f"{what}: tokens must be a 2-D [T, d] array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what}: no tokens")
    return arr


def check_offsets(offsets: object, n_tokens: int, *, what: str = "token sets") -> np.ndarray:
    """``offsets`` as C-contiguous int64: 1-D integers that start at 0, strictly increase (no
    empty set) and end at ``n_tokens``."""
    arr = np.asarray(offsets)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(
            f"{what}: offsets must be a 1-D array of n + 1 >= 2 integers, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: offsets must be integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out[0] != 0:
        raise ValueError(f"{what}: offsets must start at 0, got {int(out[0])}")
    steps = np.diff(out)
    if (steps < 0).any():
        i = int(np.argmax(steps < 0))
        raise ValueError(
            f"{what}: offsets are not monotone: offsets[{i + 1}] = {int(out[i + 1])} is less "
            f"than offsets[{i}] = {int(out[i])}"
        )
    if (steps == 0).any():
        i = int(np.argmax(steps == 0))
        raise ValueError(
            f"{what}: set {i} is empty (offsets[{i}] = offsets[{i + 1}] = {int(out[i])}); "
            "every set needs at least one token"
        )
    if out[-1] != n_tokens:
        raise ValueError(
            f"{what}: offsets end at {int(out[-1])} but there are {n_tokens} tokens "
            "(the last offset must equal the number of token rows)"
        )
    return np.ascontiguousarray(out)


def check_token_sets(
    tokens: object, offsets: object, *, what: str = "token sets"
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """A whole batch: ``tokens`` as C-contiguous float32 ``[T, d]`` (numeric, ``d >= 1``) and
    ``offsets`` as int64 ``[n + 1]``. Values are converted, not judged: a NaN, or a number
    past float32's range (which becomes inf), is the caller's to refuse."""
    arr = check_token_matrix(tokens, what=what)
    if arr.shape[1] == 0:
        raise ValueError(f"{what}: tokens have no columns (shape {arr.shape})")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: tokens must be numbers, got dtype {arr.dtype}")
    checked = check_offsets(offsets, arr.shape[0], what=what)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(arr, dtype=np.float32), checked
