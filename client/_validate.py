"""Argument checks: every one raises a ValueError naming the argument before anything is sent,
and returns the value in the form the request body wants."""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, SupportsIndex, cast, get_args

import numpy as np
import numpy.typing as npt
import orjson

from glint.wire import check_token_sets
from glint.wire.filters import filter_json

from .models import Filter, Include

__all__ = [
    "batch_matrix",
    "batch_token_sets",
    "check_filter",
    "check_include",
    "check_k",
    "check_name",
    "check_params",
    "check_path",
    "encode_json",
    "is_token_sets",
    "query_body",
]

_INCLUDES: tuple[str, ...] = get_args(Include)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"collection name must be a non-empty string, got {name!r}")
    if name in (".", ".."):
        raise ValueError(f"collection name {name!r} is not allowed")
    return name


def check_k(k: object) -> int:
    if isinstance(k, bool):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    try:
        value = operator.index(cast(SupportsIndex, k))  # a TypeError says it is not one
    except TypeError:
        raise ValueError(f"k must be an integer >= 1, got {k!r}") from None
    if value < 1:
        raise ValueError(f"k must be >= 1, got {value}")
    return value


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping, got {type(params).__name__}")
    out = dict(params)
    for key in out:
        if not isinstance(key, str):
            raise ValueError(f"params keys must be strings, got {key!r}")
    try:
        json.dumps(out, allow_nan=False)  # refuses NaN and inf, which orjson would send as null
        encode_json(out)  # and what orjson cannot write (non-string keys, huge integers)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be JSON-serialisable: {exc}") from None
    return out


def check_filter(filter: Filter | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A search's filter as the JSON object to send, or None for no filter (None, or one
    without clauses). A mapping is checked against :class:`Filter` here: a ValueError names
    the place (``filter.must.0.match``) before anything is sent."""
    return filter_json(filter)


def check_include(include: Sequence[str] | str | None) -> list[str]:
    if include is None:
        return []
    items = [include] if isinstance(include, str) else list(include)
    for item in items:
        if item not in _INCLUDES:
            raise ValueError(f"include items must be one of {list(_INCLUDES)}, got {item!r}")
    return items


def check_path(path: str | os.PathLike[str]) -> str:
    try:
        value = os.fspath(path)
    except TypeError:
        raise ValueError(f"path must be a string or path-like, got {path!r}") from None
    if not isinstance(value, str) or not value:
        raise ValueError(f"path must be a non-empty string, got {path!r}")
    return value


def encode_json(body: Any) -> bytes:
    """A request body as compact JSON. Query vectors stay float32 arrays up to here:
    orjson writes each as its shortest float32 decimal, much faster than ``json`` and in
    fewer bytes (callers have checked the values are finite)."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def _numeric_array(data: object, what: str) -> np.ndarray:
    """``data`` as a numeric (int or float) ndarray, or a ValueError saying why not."""
    if isinstance(data, str | bytes):
        raise ValueError(f"{what} must be an array of numbers, got {type(data).__name__}")
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{what} must be a rectangular array of numbers: {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} must hold real numbers, got an array of dtype {arr.dtype}")
    return arr


def _check_finite_f32(arr: np.ndarray, what: str) -> npt.NDArray[np.float32]:
    """``arr`` as float32; a ValueError if any value is NaN, infinite or overflows float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        arr32 = np.asarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr32)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        index = where[0] if len(where) == 1 else list(where)
        value = arr[where].item()
        raise ValueError(f"{what} must hold finite float32 values; got {value!r} at index {index}")
    return arr32


def query_body(query: object) -> dict[str, Any]:
    """The ``vector`` (1-D) or ``vectors`` (2-D token matrix) member of a search body."""
    arr = _numeric_array(query, "query")
    if arr.ndim == 1:
        if arr.shape[0] == 0:
            raise ValueError("query vector is empty")
        _check_finite_f32(arr, "query vector")
        return {"vector": np.ascontiguousarray(arr, dtype=np.float32)}  # see encode_json
    if arr.ndim == 2:
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"query token matrix is empty (shape {arr.shape})")
        _check_finite_f32(arr, "query token matrix")
        return {"vectors": np.ascontiguousarray(arr, dtype=np.float32)}
    raise ValueError(
        "query must be a 1-D vector or a 2-D token matrix, "
        f"got a {arr.ndim}-D array of shape {arr.shape}"
    )


def batch_matrix(queries: object) -> npt.NDArray[np.float32]:
    """The batch as a C-contiguous float32 ``[nq, dim]`` matrix."""
    arr = _numeric_array(queries, "queries")
    if arr.ndim != 2:
        hint = " (use queries.reshape(1, -1) for a single query)" if arr.ndim == 1 else ""
        raise ValueError(
            f"queries must be a 2-D [nq, dim] matrix, got a {arr.ndim}-D array "
            f"of shape {arr.shape}{hint}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"queries must hold at least one non-empty row, got shape {arr.shape}")
    return np.ascontiguousarray(_check_finite_f32(arr, "queries"))


def is_token_sets(queries: object) -> bool:
    """Whether a batch holds token sets: an object with ``tokens`` and ``offsets`` (such as
    ``glint.index.TokenSets``), a mapping with those keys, or a list of 2-D matrices."""
    if hasattr(queries, "tokens") and hasattr(queries, "offsets"):
        return True
    if isinstance(queries, Mapping):
        return "tokens" in queries and "offsets" in queries
    if isinstance(queries, list | tuple) and queries and not isinstance(queries[0], int | float):
        return all(np.ndim(item) == 2 for item in queries)
    return False


def _stacked(sets: Iterable[object]) -> tuple[np.ndarray, np.ndarray]:
    """A list of ``[t_i, d]`` matrices as flat ``tokens`` and ``offsets``."""
    mats = [_numeric_array(item, f"token set {i}") for i, item in enumerate(sets)]
    for i, mat in enumerate(mats):
        if mat.shape[0] == 0 or mat.shape[1] == 0:
            raise ValueError(f"token set {i} is empty (shape {mat.shape})")
        if mat.shape[1] != mats[0].shape[1]:
            raise ValueError(
                f"token set {i} has dimension {mat.shape[1]}, token set 0 has {mats[0].shape[1]}"
            )
    offsets = np.concatenate([[0], np.cumsum([m.shape[0] for m in mats])])
    return np.concatenate(mats, axis=0), offsets


def batch_token_sets(
    queries: object,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """A batch of token sets (see :func:`is_token_sets`) as float32 ``tokens`` [T, d] and
    int64 ``offsets`` [n + 1]."""
    tokens: object
    offsets: object
    if isinstance(queries, Mapping):
        tokens, offsets = queries["tokens"], queries["offsets"]
    elif hasattr(queries, "tokens") and hasattr(queries, "offsets"):
        tokens, offsets = queries.tokens, queries.offsets
    else:
        tokens, offsets = _stacked(cast(Iterable[object], queries))  # a list: is_token_sets
    tok = _numeric_array(tokens, "tokens")
    checked = check_token_sets(tok, _numeric_array(offsets, "offsets"), what="token sets")
    _check_finite_f32(tok, "tokens")  # names the first bad value as it was given
    return checked
