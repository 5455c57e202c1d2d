"""Input readers for the indexer: vectors, ids and payloads from files, validated.

:func:`read_vectors` picks a reader from the file suffix (case-insensitive):

========================  ====================================================================
``.npy``                  a 2-D numeric array, memory-mapped (``allow_pickle=False``)
``.fvecs``/``.bvecs``     TEXMEX records: an int32 dimension ``d`` then ``d`` float32 / uint8 /
``.ivecs``                int32 values, little-endian
``.hdf5``/``.h5``         the ann-benchmarks layout: dataset ``train`` (needs ``glint[hdf5]``)
``.parquet``              column ``vector`` (list of numbers), optional integer column ``id``;
                          every other column becomes the row's payload (needs ``glint[parquet]``)
========================  ====================================================================

Whatever the format, vectors come back as a float32, C-contiguous ``[n, d]`` array that went
through :func:`check_vectors`, and ids through :func:`check_ids`. Every error is one line that
starts with the file path and says where the problem is (row, record, column or line). Rows are
numbered from 0; lines of text files from 1.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from .errors import DimensionError, FormatError, GlintError, InputError, NotFoundError

__all__ = [
    "VectorData",
    "check_ids",
    "check_vectors",
    "read_ids",
    "read_ivecs",
    "read_payloads",
    "read_vectors",
]

logger = logging.getLogger(__name__)

# Finiteness is checked (and dtype conversion done) this many elements at a time, so a huge
# memory-mapped input never needs a full-size temporary besides the float32 result itself.
_CHUNK_ELEMENTS = 1 << 22
_MAX_CHUNK_ROWS = 65536

_TEXMEX_DTYPES: dict[str, np.dtype] = {
    ".fvecs": np.dtype("<f4"),
    ".bvecs": np.dtype("u1"),
    ".ivecs": np.dtype("<i4"),
}
_ID_SUFFIXES = (".npy", ".txt", ".csv")
_PAYLOAD_SUFFIXES = (".jsonl", ".ndjson")
# Columns pandas adds for its index when writing parquet; they are not payload.
_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True, eq=False)
class VectorData:
    """Vectors read from one input file, with the ids and payloads it carried, if any.

    Attributes:
        vectors: float32, C-contiguous, shape ``[n, d]``; may be a read-only view of a
            memory-mapped ``.npy`` file.
        ids: int64, shape ``[n]``, unique; ``None`` means the ids are the row numbers.
        payloads: ``n`` JSON-serialisable dicts (or ``None`` for a row without payload), or
            ``None`` when the file carries no payloads.
    """

    vectors: np.ndarray
    ids: np.ndarray | None = None
    payloads: list[dict | None] | None = None


# --------------------------------------------------------------------------------------------
# validation


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
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what}: not convertible to an array: {_one_line(exc)}") from None
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
    if not isinstance(ids, np.ndarray):
        try:
            ids = np.asarray(ids)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what}: not convertible to an array: {_one_line(exc)}") from None
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


# --------------------------------------------------------------------------------------------
# public readers


def read_vectors(
    path: str | os.PathLike[str], *, dim: int | None = None, what: str = "vectors"
) -> VectorData:
    """Read vectors (and, from parquet, ids and payloads) from ``path``; see the module docs.

    Args:
        path: an existing file; its suffix picks the format.
        dim: the expected dimension, if known (:class:`DimensionError` otherwise).
        what: what the vectors are, for error messages (``"vectors"``, ``"queries"``, ...).

    Returns:
        A :class:`VectorData`; ``vectors`` is float32 C-contiguous ``[n, d]``.

    Raises:
        NotFoundError: ``path`` does not exist.
        InputError: unknown suffix, empty file, bad values, missing dataset/column, ...
        FormatError: the file is truncated or corrupt.
    """
    src = _existing_file(path)
    suffix = Path(src).suffix.lower()
    reader = _VECTOR_READERS.get(suffix)
    if reader is None:
        raise InputError(
            f"{src}: unsupported suffix {suffix or '(none)'!r} for {what}; supported: "
            f"{', '.join(_VECTOR_READERS)}"
        )
    _require_nonempty(src)
    raw, ids, payloads = reader(src)
    with _prefixed(src):
        vectors = check_vectors(raw, what=what, dim=dim)
    logger.info(
        "read %d %s of dim %d from %s%s%s",
        vectors.shape[0],
        what,
        vectors.shape[1],
        src,
        " with ids" if ids is not None else "",
        " with payloads" if payloads is not None else "",
    )
    return VectorData(vectors=vectors, ids=ids, payloads=payloads)


def read_ids(path: str | os.PathLike[str], n: int) -> np.ndarray:
    """Read ``n`` unique integer ids: ``.npy`` (1-D integer array) or text, one id per line.

    Text files (``.txt``, ``.csv``) hold one integer per line, surrounding whitespace allowed;
    trailing blank lines are ignored, other blank lines are errors.

    Returns:
        int64 ``[n]``.
    """
    src = _existing_file(path)
    suffix = Path(src).suffix.lower()
    if suffix not in _ID_SUFFIXES:
        raise InputError(
            f"{src}: unsupported suffix {suffix or '(none)'!r} for ids; supported: "
            f"{', '.join(_ID_SUFFIXES)}"
        )
    _require_nonempty(src)
    if suffix == ".npy":
        try:
            raw = np.load(src, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FormatError(f"{src}: not a readable .npy file: {_one_line(exc)}") from None
    else:
        raw = _parse_int_lines(src)
    with _prefixed(src):
        ids = check_ids(raw, n)
    logger.debug("read %d ids from %s", n, src)
    return ids


def read_payloads(path: str | os.PathLike[str], n: int) -> list[dict | None]:
    """Read ``n`` payloads from JSON Lines: line ``i + 1`` is row ``i``'s object, or ``null``.

    A trailing newline is fine; a blank line is an error (write ``null`` instead).

    Returns:
        A list of ``n`` dicts or ``None``s.
    """
    src = _existing_file(path)
    suffix = Path(src).suffix.lower()
    if suffix not in _PAYLOAD_SUFFIXES:
        raise InputError(
            f"{src}: unsupported suffix {suffix or '(none)'!r} for payloads; supported: "
            f"{', '.join(_PAYLOAD_SUFFIXES)}"
        )
    payloads: list[dict | None] = []
    lineno = 0
    try:
        with open(src, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                payloads.append(_parse_payload_line(src, lineno, line))
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{src}: line {lineno + 1} is not valid UTF-8: {_one_line(exc)}"
        ) from None
    if len(payloads) != n:
        raise InputError(f"{src}: expected {n} payload lines (one per row), got {len(payloads)}")
    logger.debug("read %d payloads from %s", n, src)
    return payloads


def read_ivecs(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a TEXMEX ``.ivecs`` file (e.g. ground-truth neighbour ids) as int32 ``[n, d]``."""
    src = _existing_file(path)
    _require_nonempty(src)
    records = _read_texmex(src, _TEXMEX_DTYPES[".ivecs"])
    out = np.ascontiguousarray(records, dtype=np.int32)
    logger.debug("read %d x %d ivecs from %s", out.shape[0], out.shape[1], src)
    return out


# --------------------------------------------------------------------------------------------
# helpers


def _one_line(exc: BaseException) -> str:
    """``str(exc)`` squeezed onto one line (or the exception's type name if it is empty)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def _prefixed(src: str) -> Iterator[None]:
    """Re-raise glint errors from the block with ``src: `` in front of the message."""
    try:
        yield
    except GlintError as exc:
        message = str(exc)
        if message.startswith(f"{src}: "):
            raise
        raise type(exc)(f"{src}: {message}").with_traceback(exc.__traceback__) from None


def _existing_file(path: str | os.PathLike[str]) -> str:
    """``path`` as a string, if it names an existing regular file."""
    src = os.fspath(path)
    if not os.path.exists(src):
        raise NotFoundError(f"{src}: no such file")
    if os.path.isdir(src):
        raise InputError(f"{src}: is a directory, expected a file")
    return src


def _require_nonempty(src: str) -> None:
    if os.path.getsize(src) == 0:
        raise InputError(f"{src}: empty file (0 bytes)")


def _parse_int_lines(src: str) -> np.ndarray:
    """Parse a text file holding one integer per line into int64 ``[lines]``."""
    try:
        with open(src, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise FormatError(f"{src}: not valid UTF-8: {_one_line(exc)}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{src}: no ids (only blank lines)")
    try:
        return np.char.strip(np.array(lines, dtype=str)).astype(np.int64)
    except (ValueError, OverflowError):
        pass
    # Slow path, only to say which line is bad.
    for i, line in enumerate(lines):
        try:
            value = int(line.strip())
        except ValueError:
            raise FormatError(
                f"{src}: line {i + 1} (row {i}) is not an integer: {line.strip()!r}"
            ) from None
        if not -(2**63) <= value < 2**63:
            raise InputError(f"{src}: line {i + 1} (row {i}): id {value} does not fit in int64")
    raise FormatError(f"{src}: could not parse the ids as int64")


def _parse_payload_line(src: str, lineno: int, line: str) -> dict | None:
    """One JSON Lines payload: an object or ``null``."""
    where = f"{src}: line {lineno} (row {lineno - 1})"
    if not line.strip():
        raise InputError(f"{where} is blank; write null for a row without a payload")
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where} is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if value is not None and not isinstance(value, dict):
        raise InputError(f"{where} is a JSON {type(value).__name__}, expected an object or null")
    return value


# --------------------------------------------------------------------------------------------
# format readers: each returns (raw vectors, ids or None, payloads or None)

_Read: TypeAlias = "tuple[np.ndarray, np.ndarray | None, list[dict | None] | None]"


def _read_npy(src: str) -> _Read:
    try:
        data = np.load(src, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FormatError(f"{src}: not a readable .npy file: {_one_line(exc)}") from None
    if not isinstance(data, np.ndarray):  # np.load of an .npz-in-disguise returns NpzFile
        raise FormatError(f"{src}: not a .npy array file")
    return data, None, None


def _read_texmex(src: str, value_dtype: np.dtype) -> np.ndarray:
    """Memory-map TEXMEX records and return the ``[n, d]`` values (a strided, read-only view)."""
    size = os.path.getsize(src)
    if size == 0:
        raise InputError(f"{src}: empty file (0 bytes)")
    if size < 4:
        raise FormatError(f"{src}: truncated: {size} bytes is too short for a record header")
    d = int(np.fromfile(src, dtype="<i4", count=1)[0])
    if d <= 0:
        raise FormatError(f"{src}: record 0 has dimension {d}; expected a positive int32")
    record_size = 4 + d * value_dtype.itemsize
    if size % record_size:
        raise FormatError(
            f"{src}: truncated: {size} bytes is not a multiple of the record size "
            f"{record_size} (dim {d})"
        )
    n = size // record_size
    record = np.dtype([("dim", "<i4"), ("values", value_dtype, (d,))])
    records = np.memmap(src, dtype=record, mode="r", shape=(n,))
    dims = records["dim"]
    bad = np.flatnonzero(dims != d)
    if bad.size:
        i = int(bad[0])
        raise FormatError(f"{src}: record {i} has dimension {int(dims[i])}, but record 0 has {d}")
    return records["values"]


def _texmex_reader(suffix: str) -> Callable[[str], _Read]:
    value_dtype = _TEXMEX_DTYPES[suffix]

    def read(src: str) -> _Read:
        return _read_texmex(src, value_dtype), None, None

    return read


def _read_hdf5(src: str) -> _Read:
    try:
        import h5py
    except ImportError:
        raise InputError(f"{src}: reading .hdf5 needs h5py: pip install 'glint[hdf5]'") from None
    try:
        f = h5py.File(src, "r")
    except OSError as exc:
        raise FormatError(f"{src}: not a readable HDF5 file: {_one_line(exc)}") from None
    with f:
        node = f.get("train")
        if not isinstance(node, h5py.Dataset):
            found: list[str] = []

            def collect(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    found.append(name)

            f.visititems(collect)
            problem = "no 'train' dataset" if node is None else "'train' is a group, not a dataset"
            raise InputError(f"{src}: {problem}; datasets present: {', '.join(found) or '(none)'}")
        try:
            data = node[()]
        except (OSError, ValueError, TypeError) as exc:
            raise FormatError(f"{src}: cannot read dataset 'train': {_one_line(exc)}") from None
    return np.asarray(data), None, None


def _read_parquet(src: str) -> _Read:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{src}: reading .parquet needs pyarrow: pip install 'glint[parquet]'"
        ) from None
    try:
        table = pq.read_table(src)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FormatError(f"{src}: not a readable parquet file: {_one_line(exc)}") from None
    names = table.column_names
    for name in set(names):
        if names.count(name) > 1:
            raise InputError(f"{src}: column {name!r} appears {names.count(name)} times")
    if "vector" not in names:
        raise InputError(f"{src}: no 'vector' column; columns present: {', '.join(names)}")
    n = table.num_rows
    vectors = _parquet_vectors(src, pa, table.column("vector"))
    ids = None
    if "id" in names:
        column = table.column("id")
        if not pa.types.is_integer(column.type):
            raise InputError(f"{src}: column 'id' has type {column.type}, expected integers")
        _no_nulls(src, "id", column.combine_chunks())
        with _prefixed(src):
            ids = check_ids(column.to_numpy(), n, what="column 'id'")
    payload_names = [
        name
        for name in names
        if name not in ("vector", "id") and not _PANDAS_INDEX_COLUMN.fullmatch(name)
    ]
    payloads = _parquet_payloads(src, pa, table, payload_names) if payload_names else None
    return vectors, ids, payloads


def _no_nulls(src: str, name: str, arr: Any) -> None:
    """Raise InputError naming the first row where the arrow array ``arr`` is null."""
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{src}: row {row}: column {name!r} is null")


def _parquet_vectors(src: str, pa: Any, column: Any) -> np.ndarray:
    """The ``vector`` column as a numeric ``[n, d]`` array (dtype of the list values)."""
    typ = column.type
    fixed = pa.types.is_fixed_size_list(typ)
    if not (fixed or pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        raise InputError(f"{src}: column 'vector' has type {typ}, expected a list of numbers")
    value_type = typ.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise InputError(f"{src}: column 'vector' holds {value_type}, expected numbers")
    arr = column.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.empty((0, typ.list_size if fixed else 0), dtype=np.float32)
    _no_nulls(src, "vector", arr)
    if fixed:
        d = typ.list_size
    else:
        lengths = np.diff(arr.offsets.to_numpy())
        d = int(lengths[0])
        ragged = np.flatnonzero(lengths != d)
        if ragged.size:
            row = int(ragged[0])
            raise InputError(
                f"{src}: row {row}: 'vector' has {int(lengths[row])} values, but row 0 has {d}"
            )
    values = arr.flatten()
    if values.null_count:
        flat = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        row, col = divmod(flat, d)
        raise InputError(f"{src}: row {row}, column {col}: 'vector' element is null")
    return values.to_numpy(zero_copy_only=False).reshape(n, d)


def _parquet_payloads(src: str, pa: Any, table: Any, names: list[str]) -> list[dict | None]:
    """One dict per row mapping each payload column to a plain, JSON-serialisable value."""
    columns: list[list[Any]] = []
    for name in names:
        column = table.column(name)
        plan = _json_plan(pa, column.type)
        if plan == "binary":
            raise InputError(
                f"{src}: column {name!r} has type {column.type}, which has no JSON form; "
                "drop it or cast it to string"
            )
        values = column.to_pylist()
        if plan == "convert":
            values = [_jsonable(v) for v in values]
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _json_plan(pa: Any, typ: Any) -> str:
    """``"ok"`` if ``to_pylist`` gives JSON-able values for arrow type ``typ``, ``"convert"`` if
    they need :func:`_jsonable` (temporal, decimal), ``"binary"`` if they cannot be JSON."""
    t = pa.types
    if t.is_binary(typ) or t.is_large_binary(typ) or t.is_fixed_size_binary(typ):
        return "binary"
    if t.is_temporal(typ) or t.is_decimal(typ):
        return "convert"
    children: list[Any] = []
    if t.is_list(typ) or t.is_large_list(typ) or t.is_fixed_size_list(typ):
        children = [typ.value_type]
    elif t.is_struct(typ):
        children = [typ.field(i).type for i in range(typ.num_fields)]
    elif t.is_map(typ):
        children = [typ.key_type, typ.item_type]
    elif t.is_dictionary(typ):
        children = [typ.value_type]
    plans = {_json_plan(pa, child) for child in children}
    for plan in ("binary", "convert"):
        if plan in plans:
            return plan
    return "ok"


def _jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO strings, durations as seconds and decimals as floats."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_VECTOR_READERS: dict[str, Callable[[str], _Read]] = {
    ".npy": _read_npy,
    ".fvecs": _texmex_reader(".fvecs"),
    ".bvecs": _texmex_reader(".bvecs"),
    ".ivecs": _texmex_reader(".ivecs"),
    ".hdf5": _read_hdf5,
    ".h5": _read_hdf5,
    ".parquet": _read_parquet,
}
