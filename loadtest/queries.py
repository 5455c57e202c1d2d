"""The query set of a load test: read from a file or an array, checked against the collection,
or drawn at random."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from glint.wire import DecodeError, check_token_sets, decode_npy, decode_npz

from .errors import LoadTestError

__all__ = ["Queries", "checked_queries", "load_queries", "unit_rows"]

Queries = np.ndarray | list[np.ndarray]
"""A float32 ``[n, dim]`` matrix, or for a multi-vector collection one token matrix per query."""


def _split_sets(tokens: Any, offsets: Any, what: str) -> list[np.ndarray]:
    try:
        flat, bounds = check_token_sets(tokens, offsets, what=what)
    except ValueError as exc:
        raise LoadTestError(str(exc)) from None
    return [flat[a:b] for a, b in itertools.pairwise(bounds.tolist())]


def _as_matrix(array: Any, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.dtype.kind not in "fiu" or 0 in array.shape:
        raise LoadTestError(
            f"{what}: queries must be a non-empty numeric 2-D [n, dim] array, "
            f"got shape {array.shape} and dtype {array.dtype}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def load_queries(source: str | Path | np.ndarray | tuple[np.ndarray, np.ndarray]) -> Queries:
    """A float32 ``[n, dim]`` matrix from a ``.npy`` file or an array, or a list of token
    matrices from a ``.npz`` file (``tokens`` [T, dim], ``offsets`` [n + 1]) or a
    ``(tokens, offsets)`` pair."""
    if isinstance(source, tuple):
        return _split_sets(source[0], source[1], "queries")
    if isinstance(source, np.ndarray):
        return _as_matrix(source, "queries")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise LoadTestError(f"{path}: queries must be a .npy matrix or a .npz of token sets")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LoadTestError(f"{path}: no such file") from None
    except OSError as exc:
        raise LoadTestError(f"{path}: cannot read queries ({exc})") from None
    try:
        if suffix == ".npy":
            return _as_matrix(decode_npy(data, what=str(path)), str(path))
        arrays = decode_npz(data, ("tokens", "offsets"), what=str(path))
    except DecodeError as exc:
        raise LoadTestError(str(exc)) from None
    if len(arrays) != 2:
        raise LoadTestError(f"{path}: a .npz of queries must hold 'tokens' and 'offsets'")
    return _split_sets(arrays["tokens"], arrays["offsets"], str(path))


def checked_queries(queries: Queries, dim: int, multivector: bool, name: str) -> Queries:
    """``queries``, if they fit collection ``name`` (its ``dim`` and kind)."""
    if multivector:
        if isinstance(queries, np.ndarray):
            raise LoadTestError(
                f"collection {name!r} is multi-vector: give queries as a .npz with 'tokens' "
                "and 'offsets'"
            )
        got = queries[0].shape[1]
    else:
        if not isinstance(queries, np.ndarray):
            raise LoadTestError(
                f"collection {name!r} is single-vector: give queries as a 2-D .npy matrix"
            )
        got = queries.shape[1]
    if got != dim:
        raise LoadTestError(f"queries have dimension {got}, collection {name!r} has {dim}")
    return queries


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random float32 unit vectors of ``dim`` dimensions."""
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows
