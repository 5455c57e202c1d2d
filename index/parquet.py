"""The ``.parquet`` input format (needs ``glint-vector[parquet]``): a vector column (a list of
numbers per row), an optional integer id column, and payload columns.

By default the vectors are column ``vector``, the ids column ``id`` when the file has one,
and every other column is the row's payload; :class:`ParquetColumns` chooses others (the
``--vector-column``, ``--id-column`` and ``--payload-columns`` flags of ``glint build``).

The file is read ``batch_size`` rows at a time, only the chosen columns, straight into a
preallocated float32 ``[n, d]`` array (``n`` from the file's metadata): the table is never
held in memory whole. Errors name the file's row numbers, not a batch's.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, FormatError, InputError, one_line, prefixed_errors
from .validate import check_ids

__all__ = ["ParquetColumns", "read_parquet"]

# Columns pandas adds for its index when writing parquet; they are not payload.
_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True)
class ParquetColumns:
    """Which columns of a parquet file hold what, and how many rows to decode at a time.

    Attributes:
        vector_column: the column of vectors (a list, large list or fixed-size list of
            numbers per row).
        id_column: an integer column of external ids; ``None`` means ``id`` when the file has
            such a column, ``""`` means none (the ids are then the row numbers).
        payload_columns: the columns that make up each row's payload; ``None`` means every
            column but the vector and id columns (and pandas' index), ``()`` means none.
        batch_size: rows decoded at a time.
    """

    vector_column: str = "vector"
    id_column: str | None = None
    payload_columns: Sequence[str] | None = None
    batch_size: int = 65536

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")


def read_parquet(
    src: str, columns: ParquetColumns | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any] | None] | None]:
    """Vectors (float32 ``[n, d]``, finite), ids (int64 ``[n]``, or None) and payloads (one
    dict per row, or None) of the parquet file ``src``, read batch by batch."""
    cols = columns or ParquetColumns()
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{src}: reading .parquet needs pyarrow: pip install 'glint-vector[parquet]'"
        ) from None
    try:
        file = pq.ParquetFile(src)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FormatError(f"{src}: not a readable parquet file: {one_line(exc)}") from None
    schema = file.schema_arrow
    vector_name, id_name, payload_names = _choose_columns(src, schema.names, cols)
    _vector_dim(src, pa, vector_name, schema.field(vector_name).type)  # type checks first
    if id_name is not None and not pa.types.is_integer(schema.field(id_name).type):
        raise InputError(
            f"{src}: column {id_name!r} has type {schema.field(id_name).type}, expected integers "
            "(choose the id column with --id-column, or --id-column '' to number the rows)"
        )
    convert = {}
    for name in payload_names:
        plan = _json_plan(pa, schema.field(name).type)
        if plan == "binary":
            raise InputError(
                f"{src}: column {name!r} has type {schema.field(name).type}, which has no JSON "
                "form; drop it or cast it to string"
            )
        convert[name] = plan == "convert"

    n = file.metadata.num_rows
    reader = _Batches(src, pa, vector_name, schema.field(vector_name).type, n)
    ids = None if id_name is None else np.empty(n, schema.field(id_name).type.to_pandas_dtype())
    payloads: list[dict[str, Any] | None] | None = [] if payload_names else None
    wanted = list(dict.fromkeys([vector_name, *([id_name] if id_name else []), *payload_names]))
    start = 0
    try:
        for batch in file.iter_batches(batch_size=cols.batch_size, columns=wanted):
            b = batch.num_rows
            if start + b > n:
                raise FormatError(f"{src}: holds more rows than its metadata says ({n})")
            reader.add(batch.column(vector_name), start)
            if ids is not None and id_name is not None:
                column = batch.column(id_name)
                _no_nulls(src, id_name, column, start)
                ids[start : start + b] = column.to_numpy(zero_copy_only=False)
            if payloads is not None:
                payloads.extend(_payload_rows(batch, payload_names, convert))
            start += b
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{src}: not a readable parquet file: {one_line(exc)}") from None
    if start != n:
        raise FormatError(f"{src}: holds {start} rows, but its metadata says {n}")
    if ids is not None:
        with prefixed_errors(src):
            ids = check_ids(ids, n, what=f"column {id_name!r}")
    return reader.vectors(), ids, payloads


def _choose_columns(
    src: str, names: list[str], cols: ParquetColumns
) -> tuple[str, str | None, list[str]]:
    """The vector column, the id column (or None) and the payload columns, all present."""
    for name in set(names):
        if names.count(name) > 1:
            raise InputError(f"{src}: column {name!r} appears {names.count(name)} times")

    def present(name: str) -> str:
        if name not in names:
            raise InputError(f"{src}: no {name!r} column; columns present: {', '.join(names)}")
        return name

    vector_name = present(cols.vector_column)
    if cols.id_column is None:
        id_name = "id" if "id" in names and vector_name != "id" else None
    else:
        id_name = present(cols.id_column) if cols.id_column else None
    if cols.payload_columns is None:
        payload_names = [
            name
            for name in names
            if name not in (vector_name, id_name) and not _PANDAS_INDEX_COLUMN.fullmatch(name)
        ]
    else:
        payload_names = [present(name) for name in dict.fromkeys(cols.payload_columns)]
    return vector_name, id_name, payload_names


def _vector_dim(src: str, pa: Any, name: str, typ: Any) -> int | None:
    """The dimension a vector column's type fixes (None for variable-size lists), after
    checking that it is a list of numbers."""
    fixed = pa.types.is_fixed_size_list(typ)
    if not (fixed or pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        raise InputError(f"{src}: column {name!r} has type {typ}, expected a list of numbers")
    value_type = typ.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise InputError(f"{src}: column {name!r} holds {value_type}, expected numbers")
    return int(typ.list_size) if fixed else None


class _Batches:
    """Fills a float32 ``[n, d]`` array from a vector column, one batch at a time; ``d`` is
    the type's list size, or the length of row 0."""

    def __init__(self, src: str, pa: Any, name: str, typ: Any, n: int) -> None:
        self.src, self.name, self.n = src, name, n
        self.dim = _vector_dim(src, pa, name, typ)
        self.variable = self.dim is None  # a list type: each row's length is checked
        self.out: np.ndarray | None = None

    def add(self, arr: Any, start: int) -> None:
        """Copy the vectors of arrow array ``arr``, rows ``start...`` of the file."""
        src, name, b = self.src, self.name, len(arr)
        if b == 0:
            return
        _no_nulls(src, name, arr, start)
        lengths = np.diff(arr.offsets.to_numpy()) if self.variable else None
        if self.out is None:
            self.dim = int(lengths[0]) if lengths is not None else self.dim
            self.out = np.empty((self.n, self.dim or 0), dtype=np.float32)
        d = self.out.shape[1]
        if lengths is not None:
            ragged = np.flatnonzero(lengths != d)
            if ragged.size:
                row = int(ragged[0])
                raise InputError(
                    f"{src}: row {start + row}: {name!r} has {int(lengths[row])} values, but "
                    f"row 0 has {d}"
                )
        values = arr.flatten()
        if values.null_count:
            flat = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            row, col = divmod(flat, d)
            raise InputError(f"{src}: row {start + row}, column {col}: {name!r} element is null")
        raw = values.to_numpy(zero_copy_only=False).reshape(b, d)
        block = self.out[start : start + b]
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, by position
            block[...] = raw
        if raw.dtype.kind == "f" and not np.isfinite(block).all():
            row, col = divmod(int(np.argmax(~np.isfinite(block))), d)
            value = float(raw[row, col])
            if np.isfinite(value):
                raise InputError(
                    f"{src}: row {start + row}, column {col}: value {value!r} in {name!r} "
                    "overflows float32"
                )
            raise InputError(
                f"{src}: row {start + row}, column {col} is {value} in {name!r}; all values "
                "must be finite"
            )

    def vectors(self) -> np.ndarray:
        """The ``[n, d]`` array (``[0, d]`` for a file without rows)."""
        if self.out is None:
            return np.empty((0, self.dim or 0), dtype=np.float32)
        return self.out


def _no_nulls(src: str, name: str, arr: Any, start: int) -> None:
    """Raise InputError naming the file's row where arrow array ``arr`` (rows ``start...``)
    is null."""
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{src}: row {start + row}: column {name!r} is null")


def _payload_rows(
    batch: Any, names: list[str], convert: dict[str, bool]
) -> list[dict[str, Any] | None]:
    """One dict per row of ``batch`` mapping each payload column to a JSON-able value."""
    columns: list[list[Any]] = []
    for name in names:
        values = batch.column(name).to_pylist()
        columns.append([_jsonable(v) for v in values] if convert[name] else values)
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
