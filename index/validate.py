"""Checks on what callers hand the index layer: vectors, ids, ``k`` and thread counts.

Each returns the value in the form the kernels want (float32 C-contiguous vectors, int64 ids,
plain ints) or raises an :class:`~glint.index.errors.InputError` / ``ConfigError`` naming
what is wrong and where. File formats live in :mod:`glint.index.readers`, which uses these.
"""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from .errors import ConfigError, DimensionError, InputError, one_line

__all__ = [
    "RESULT_ENTRY_BYTES",
    "check_ids",
    "check_k",
    "check_result_size",
    "check_threads",
    "check_vectors",
    "memory_limit",
]

# Finiteness is checked (and dtype conversion done) this many elements at a time, so a huge
# memory-mapped input never needs a full-size temporary besides the float32 result itself.
_CHUNK_ELEMENTS = 1 << 22
_MAX_CHUNK_ROWS = 65536


#: Bytes of one result entry: an int64 id and a float32 score.
RESULT_ENTRY_BYTES = 12


def check_k(k: object) -> int:
    """``k`` must be a positive integer whose results for one query can be held.

    A search answers ``[nq, k]`` arrays, padded with -1 (and -inf / +inf scores) past the
    hits it has: a ``k`` over the index's count is allowed and only adds padding. What is
    refused is a ``k`` whose results could never be held, even for a single query:
    :func:`check_result_size` with ``nq = 1``. (Clamping the allocation to the index's count
    would not help: the padded answer the contract promises is itself ``[nq, k]``.)
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    check_result_size(1, int(k))
    return int(k)


def check_result_size(nq: int, k: int, *, count: int | None = None) -> None:
    """Refuse a search of ``nq`` queries for ``k`` results each whose ``[nq, k]`` answer
    (:data:`RESULT_ENTRY_BYTES` per entry) is larger than this machine's memory
    (:func:`memory_limit`): it could not be answered, and trying would only end in a
    ``MemoryError`` or the kernel's OOM killer. ``count`` (the index's size), when given,
    lets the message say that a ``k`` over it only adds padding.

    Raises:
        ConfigError: naming ``k``, the size the answer would take and the limit.
    """
    limit = memory_limit()
    need = nq * k * RESULT_ENTRY_BYTES
    if limit is None or need <= limit:
        return
    queries = "1 query" if nq == 1 else f"{nq} queries"
    hint = (
        f"; the index holds {count} vectors, so a k over {count} only adds -1 padding"
        if count is not None and k > count
        else ""
    )
    raise ConfigError(
        f"k={k} is too large: the results of {queries} would take {_size(need)} "
        f"({RESULT_ENTRY_BYTES} bytes per hit), more than this machine's memory "
        f"({_size(limit)}){hint}"
    )


@functools.cache
def memory_limit() -> int | None:
    """Bytes of memory this process can have at most: the machine's physical memory, or its
    cgroup's limit (a container's) when lower; None where neither can be read."""
    found: list[int] = []
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not a POSIX system
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (cgroup v2) means no limit
            found.append(int(text))
    positive = [value for value in found if value > 0]
    return min(positive) if positive else None


def _size(n: int) -> str:
    """``n`` bytes in binary units, three significant digits (``3.64 TiB``)."""
    value, unit = float(n), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{n} bytes" if unit == "bytes" else f"{value:.3g} {unit}"


@functools.cache
def _usable_cores() -> int:
    """The cores this process may run on, read once (a system call every search otherwise)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def check_threads(threads: int | None) -> int:
    """``threads`` if given (>= 1), else the number of usable cores."""
    if threads is None:
        return _usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    return threads


def check_vectors(x: np.ndarray, *, what: str = "vectors", dim: int | None = None) -> np.ndarray:
    """Validate a matrix of vectors and return it as float32, C-contiguous ``[n, d]``.

    ``x`` must be 2-D, of an integer or floating dtype, with ``n >= 1`` and ``d >= 1``, and every
    value must be finite (also after conversion to float32). When ``dim`` is given, ``d`` must
    equal it (else :class:`DimensionError`). No copy is made when ``x`` is already float32 and
    C-contiguous; otherwise the conversion is done in chunks.

    Raises:
        InputError: naming ``what`` and the problem (shape, dtype, first non-finite row/column).
        DimensionError: ``d != dim``, naming both.
    """
    x = _as_array(x, what)
    if x.ndim != 2:
        hint = "; use x.reshape(1, -1) for a single vector" if x.ndim == 1 else ""
        raise InputError(
            f"{what}: expected a 2-D [n, d] array, got a {x.ndim}-D array of shape "
            f"{tuple(x.shape)}{hint}"
        )
    if x.dtype.kind not in "iuf":
        raise InputError(f"{what}: expected numbers (integer or float), got dtype {x.dtype}")
    n, d = x.shape
    if n == 0 or d == 0:
        raise InputError(f"{what}: empty, shape ({n}, {d}); need at least one row and one column")
    if dim is not None and d != dim:
        raise DimensionError(f"{what}: expected dimension {dim}, got {d}")
    return _to_finite_float32(x, what)


def _to_finite_float32(x: np.ndarray, what: str) -> np.ndarray:
    """Convert a 2-D numeric array to float32 C-contiguous, chunk by chunk, checking finiteness."""
    n, d = x.shape
    rows = max(1, min(_MAX_CHUNK_ROWS, _CHUNK_ELEMENTS // d))
    copy = not (x.dtype == np.float32 and x.flags.c_contiguous)
    out = np.empty((n, d), dtype=np.float32) if copy else np.asarray(x)
    # Integers of any width are finite in float32 (max int64 < max float32).
    check = x.dtype.kind == "f"
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = out[start:stop]
        if copy:
            with np.errstate(over="ignore", invalid="ignore"):  # reported below, by position
                block[...] = x[start:stop]
        if check and not np.isfinite(block).all():
            flat = int(np.argmax(~np.isfinite(block)))
            r, c = divmod(flat, d)
            original = float(x[start + r, c])
            if np.isfinite(original):
                raise InputError(
                    f"{what}: row {start + r}, column {c}: value {original!r} overflows float32"
                )
            raise InputError(
                f"{what}: row {start + r}, column {c} is {original}; all values must be finite"
            )
    return out


def check_ids(ids: np.ndarray, n: int, *, what: str = "ids") -> np.ndarray:
    """Validate ids for ``n`` rows and return them as int64 ``[n]``.

    ``ids`` must be 1-D, of an integer dtype, of length ``n``, non-negative (search results
    use -1 to mark padding) and without duplicates.

    Raises:
        InputError: naming the shape, dtype, both counts, or the first duplicated id (the one
            whose repeat comes earliest) with the two rows holding it.
    """
    ids = _as_array(ids, what)
    if ids.ndim != 1:
        raise InputError(f"{what}: expected a 1-D array, got shape {tuple(ids.shape)}")
    if ids.dtype.kind not in "iu":
        raise InputError(f"{what}: expected integers, got dtype {ids.dtype}")
    if len(ids) != n:
        raise InputError(f"{what}: expected {n} ids (one per row), got {len(ids)}")
    if ids.dtype == np.uint64 and len(ids) and int(ids.max()) > np.iinfo(np.int64).max:
        row = int(np.argmax(ids > np.iinfo(np.int64).max))
        raise InputError(f"{what}: row {row}: id {int(ids[row])} does not fit in int64")
    out = np.ascontiguousarray(ids, dtype=np.int64)
    if n and int(out.min()) < 0:
        row = int(np.argmax(out < 0))
        raise InputError(
            f"{what}: row {row}: id {int(out[row])} is negative (ids must be >= 0; -1 marks "
            "padding in results)"
        )
    if n > 1:
        order = np.argsort(out, kind="stable")
        ordered = out[order]
        repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
        if repeats.size:
            # Stable sort keeps rows ascending within equal ids, so order[k + 1] is a repeat
            # and order[k] an earlier row with the same id; pick the earliest repeat.
            k = int(repeats[np.argmin(order[repeats + 1])])
            raise InputError(
                f"{what}: duplicate id {int(ordered[k])} at rows {int(order[k])} and "
                f"{int(order[k + 1])}"
            )
    return out


def _as_array(value: object, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: not convertible to an array: {one_line(exc)}") from None
