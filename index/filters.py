"""Filters compiled into the rows they allow.

A filter (the typed tree of :mod:`glint.wire.filters`, or the JSON of one) is compiled
against an index's payload indexes (:mod:`glint.index.payload_index`) into
:class:`AllowedRows`: a byte mask over the rows and its count. Each condition costs about the
size of its answer (a posting list, or a slice of sorted values) plus one pass over a byte
mask of the collection's size; the payloads themselves are never read.

Every mistake a filter can make for this index is an :class:`FilterError` naming the field:
a field without a payload index, a value of the wrong type for it, a range on a keyword.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numba import njit
from pydantic import ValidationError

from glint.wire.filters import (
    Condition,
    FieldCondition,
    Filter,
    HasIdCondition,
    IsEmptyCondition,
    error_place,
)

from .errors import InputError
from .payload_index import FieldIndex, PayloadIndex

__all__ = ["AllowedRows", "FilterError", "compile_filter", "parse_filter"]


class FilterError(InputError):
    """A filter that cannot be applied to this index; ``field`` is where it goes wrong (a
    path in the request, such as ``filter.must.0.match.value``)."""

    def __init__(self, message: str, *, field: str = "filter") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, eq=False)
class AllowedRows:
    """The rows a filter allows: ``mask`` uint8 [n] (1 = allowed) and how many there are."""

    mask: np.ndarray
    count: int

    @cached_property
    def rows(self) -> np.ndarray:
        """The allowed rows, int64, ascending."""
        return np.flatnonzero(self.mask)

    @property
    def selectivity(self) -> float:
        return self.count / max(1, len(self.mask))


def parse_filter(value: Any) -> Filter | None:
    """A :class:`Filter` from a model, a mapping or a JSON string; None for no filter (None,
    or a filter without clauses). Errors name the place: ``filter.must.0.match``."""
    if value is None or isinstance(value, Filter):
        parsed = value
    else:
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise FilterError(f"filter: not valid JSON ({exc})") from None
        if not isinstance(value, Mapping):
            raise FilterError(f"filter must be a JSON object, got {type(value).__name__}")
        try:
            parsed = Filter.model_validate(value)
        except ValidationError as exc:
            raise _validation_error(exc) from None
    return None if parsed is None or parsed.is_empty() else parsed


def _validation_error(exc: ValidationError) -> FilterError:
    first = exc.errors()[0]
    where = error_place(first)  # in the user's terms: no union member names
    message = first["msg"].removeprefix("Value error, ")
    return FilterError(f"{where}: {message}", field=where)


def compile_filter(
    flt: Filter,
    count: int,
    payload_index: PayloadIndex | None,
    ids: np.ndarray | None,
    id_order: np.ndarray | None = None,
) -> AllowedRows:
    """The rows of an index of ``count`` rows that ``flt`` allows, with ``payload_index``
    the index's payload indexes and ``ids`` its external ids (None: the row numbers;
    ``id_order``: their argsort, if the caller keeps one)."""
    if ids is not None and id_order is None:
        id_order = np.argsort(ids, kind="stable")
    mask = _Compiler(count, payload_index, ids, id_order).filter(flt, "filter")
    count_allowed = int(np.count_nonzero(mask))  # numpy counts a bool array fastest
    return AllowedRows(mask.view(np.uint8), count_allowed)


class _Compiler:
    def __init__(
        self,
        count: int,
        payload_index: PayloadIndex | None,
        ids: np.ndarray | None,
        id_order: np.ndarray | None,
    ) -> None:
        self.count = count
        self.fields = payload_index.fields if payload_index is not None else {}
        self.ids = ids
        self.id_order = id_order

    def filter(self, flt: Filter, where: str) -> np.ndarray:
        """bool [count]: the rows ``flt`` allows."""
        out: np.ndarray | None = None  # None: every row (no clause has spoken yet)
        if flt.must is not None:
            for i, cond in enumerate(flt.must):
                test = self.condition(cond, f"{where}.must.{i}")
                out = test if out is None else np.logical_and(out, test, out=out)
        if out is None:
            out = np.ones(self.count, np.bool_)
        if flt.should is not None:
            # folded one condition at a time: a long clause list holds two masks, not one each
            need = flt.min_should or 1
            if need == 1:
                anyof = np.zeros(self.count, np.bool_)
                for i, cond in enumerate(flt.should):
                    anyof |= self.condition(cond, f"{where}.should.{i}")
                out &= anyof
            else:
                hits = np.zeros(self.count, np.int32)
                for i, cond in enumerate(flt.should):
                    hits += self.condition(cond, f"{where}.should.{i}")
                out &= hits >= need
        if flt.must_not is not None:
            for i, cond in enumerate(flt.must_not):
                out &= ~self.condition(cond, f"{where}.must_not.{i}")
        return out

    def condition(self, cond: Condition, where: str) -> np.ndarray:
        if isinstance(cond, Filter):
            return self.filter(cond, where)
        if isinstance(cond, HasIdCondition):
            return self._mask(self._rows_of_ids(cond.has_id))
        if isinstance(cond, IsEmptyCondition):
            return ~self._field(cond.is_empty.key, f"{where}.is_empty.key").present_mask(self.count)
        assert isinstance(cond, FieldCondition)
        field = self._field(cond.key, f"{where}.key")
        if cond.range is not None:
            r = cond.range
            if field.kind not in ("integer", "float"):
                raise FilterError(
                    f"{where}.range: field {cond.key!r} has a {field.kind} index; a range needs "
                    "an integer or float one",
                    field=f"{where}.range",
                )
            return self._mask(field.rows_in_range(r.gt, r.gte, r.lt, r.lte))
        match = cond.match
        assert match is not None
        if match.value is not None:
            return self._mask(
                field.rows_equal(self._value(field, match.value, f"{where}.match.value"))
            )
        values = match.any if match.any is not None else match.except_
        name = "any" if match.any is not None else "except"
        assert values is not None
        found = [
            field.rows_equal(self._value(field, v, f"{where}.match.{name}.{i}"))
            for i, v in enumerate(values)
        ]
        hit = self._mask(np.concatenate(found))
        if match.any is not None:
            return hit
        out: np.ndarray = field.present_mask(self.count) & ~hit
        return out

    def _field(self, key: str, where: str) -> FieldIndex:
        field = self.fields.get(key)
        if field is None:
            indexed = ", ".join(sorted(self.fields)) or "none"
            raise FilterError(
                f"{where}: field {key!r} has no payload index (indexed fields: {indexed}); "
                f"build with --payload-index {key}:TYPE",
                field=where,
            )
        return field

    @staticmethod
    def _value(field: FieldIndex, value: Any, where: str) -> Any:
        """``value`` as the field's index stores it, or a FilterError naming the mismatch."""
        kind = field.kind
        ok = (
            isinstance(value, str)
            if kind == "keyword"
            else isinstance(value, bool)
            if kind == "bool"
            else isinstance(value, int) and not isinstance(value, bool)
            if kind == "integer"
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if not ok:
            raise FilterError(
                f"{where}: {value!r} is not {_article(kind)} {kind}, the type of the payload "
                f"index of {field.name!r}",
                field=where,
            )
        return int(value) if kind == "bool" else value

    def _mask(self, rows: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.count, np.bool_)
        _set_rows(mask, rows)
        return mask

    def _rows_of_ids(self, wanted: list[int]) -> np.ndarray:
        ids = np.asarray([i for i in wanted if -(2**63) <= i < 2**63], np.int64)  # else no row
        if self.count == 0:
            return ids[:0]
        if self.ids is None:  # the ids are the row numbers
            return ids[(ids >= 0) & (ids < self.count)]
        order = self.id_order
        assert order is not None
        slots = np.searchsorted(self.ids, ids, sorter=order)
        slots = np.minimum(slots, self.count - 1)
        rows = order[slots]
        found: np.ndarray = rows[self.ids[rows] == ids]
        return found


@njit(cache=True, nogil=True)
def _set_rows(mask: np.ndarray, rows: np.ndarray) -> None:
    """``mask[rows] = True``, without numpy's conversion of int32 rows to a fresh index
    array (the scatter is most of what compiling a broad filter costs)."""
    for i in range(rows.shape[0]):
        mask[rows[i]] = True


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
