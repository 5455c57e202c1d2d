"""The ``.parquet`` input format: a ``vector`` list column, an optional integer ``id`` column,
and every other column as the row's payload (needs ``glint[parquet]``)."""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from typing import Any

import numpy as np

from .errors import FormatError, InputError, one_line, prefixed_errors
from .validate import check_ids

__all__ = ["read_parquet"]

# Columns pandas adds for its index when writing parquet; they are not payload.
_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


def read_parquet(
    src: str,
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any] | None] | None]:
    """Vectors (column ``vector``), ids (optional integer column ``id``) and payloads (every
    other column) of a parquet file; needs ``glint[parquet]``."""
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
        raise FormatError(f"{src}: not a readable parquet file: {one_line(exc)}") from None
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
        with prefixed_errors(src):
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
    out: np.ndarray = values.to_numpy(zero_copy_only=False).reshape(n, d)
    return out


def _parquet_payloads(
    src: str, pa: Any, table: Any, names: list[str]
) -> list[dict[str, Any] | None]:
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
