"""Payload indexes: the rows where a payload field holds a value, found without reading the
payloads.

Built by the indexer for the fields the user names (``--payload-index lang:keyword``), stored
in the index directory like every other array (memory-mapped, checksummed by the manifest,
written atomically with the rest) and used by :mod:`glint.index.filters` to compile a filter
into the rows it allows. The SQLite payloads stay the source of what searches return.

Per field, with ``E`` the number of (row, value) pairs (a row holding a list contributes one
pair per element):

- ``keyword``: the distinct strings sorted (``values``, a unicode array), per value a
  posting list of rows (``rows`` int32 [E] grouped by value, ``offsets`` int64 [V + 1]);
- ``integer``, ``float``, ``bool``: the values sorted (``values`` int64/float64/int64 [E]) with
  their rows alongside (``rows`` int32 [E]), so a range is two binary searches and a slice;
- every type: ``present``, a bitmap (uint8 [ceil(n / 8)]) of the rows whose field holds a
  value (not missing, not null, not an empty list), for ``is_empty`` and ``except``.

The manifest records each field's type and slot (``payload_index``); file names use the slot
number, since field names may hold any character.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from .errors import ConfigError, FormatError, InputError
from .storage import IndexReader, IndexWriter

__all__ = [
    "FIELD_TYPES",
    "MANIFEST_FIELD",
    "FieldIndex",
    "FieldType",
    "PayloadIndex",
    "field_value",
    "parse_payload_index",
]

FieldType = Literal["keyword", "integer", "float", "bool"]
FIELD_TYPES: tuple[FieldType, ...] = get_args(FieldType)
MANIFEST_FIELD = "payload_index"
_MISSING = object()


def parse_payload_index(spec: Mapping[str, str] | Sequence[str] | None) -> dict[str, FieldType]:
    """The fields to index and their types, from ``{"lang": "keyword"}`` or from the CLI's
    ``["lang:keyword", ...]``; a bad entry is a :class:`ConfigError` naming it."""
    if spec is None:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(spec, Mapping):
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    else:
        for entry in spec:
            name, sep, kind = str(entry).rpartition(":")
            if not sep or not name:
                raise ConfigError(
                    f"payload index {entry!r} is not FIELD:TYPE (TYPE one of "
                    f"{', '.join(FIELD_TYPES)})"
                )
            pairs.append((name, kind))
    out: dict[str, FieldType] = {}
    for name, kind in pairs:
        if not name or any(not part for part in name.split(".")):
            raise ConfigError(f"payload index field {name!r} is not a field name or dotted path")
        if kind not in FIELD_TYPES:
            raise ConfigError(
                f"payload index {name!r}: type {kind!r} is not one of {', '.join(FIELD_TYPES)}"
            )
        if name in out:
            raise ConfigError(f"payload index {name!r} is given twice")
        out[name] = kind  # checked against FIELD_TYPES above
    return out


def field_value(payload: Mapping[str, Any] | None, path: str) -> Any:
    """The value at dotted ``path`` in ``payload`` (``_MISSING`` if a step is absent)."""
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _values_of(value: Any) -> list[Any]:
    """The values a field holds: none when missing or null, the elements of a list."""
    if value is _MISSING or value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _fits(kind: FieldType, value: Any) -> bool:
    if kind == "keyword":
        # numpy's unicode arrays drop trailing NULs, which would merge "a\0" with "a"
        return isinstance(value, str) and "\0" not in value
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) and -(2**63) <= value < 2**63  # an int64
    return isinstance(value, (int, float)) and abs(value) <= sys.float_info.max  # a finite double


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _floor(bound: float) -> int:
    """The largest integer at most ``bound`` (clamped past int64 for infinities)."""
    if bound == math.inf:
        return _INT64_MAX + 1
    if bound == -math.inf:
        return _INT64_MIN - 1
    return math.floor(bound)


def _ceil(bound: float) -> int:
    """The smallest integer at least ``bound`` (clamped past int64 for infinities)."""
    return -_floor(-bound)


def _as_double(bound: float) -> float:
    """A bound on a float field as a double (an integer beyond any double: an infinity)."""
    try:
        return float(bound)
    except OverflowError:
        return math.inf if bound > 0 else -math.inf


@dataclass(frozen=True)
class FieldIndex:
    """One field's index (see the module docstring for the arrays)."""

    name: str
    kind: FieldType
    values: np.ndarray
    rows: np.ndarray
    present: np.ndarray
    offsets: np.ndarray | None = None  # keyword only

    @property
    def nbytes(self) -> int:
        extra = 0 if self.offsets is None else self.offsets.nbytes
        return int(self.values.nbytes + self.rows.nbytes + self.present.nbytes + extra)

    def arrays(self) -> list[np.ndarray]:
        out = [self.values, self.rows, self.present]
        return out if self.offsets is None else [*out, self.offsets]

    # -- lookups: rows (int32, possibly repeated) -------------------------------------------
    def rows_equal(self, value: Any) -> np.ndarray:
        """Rows where the field holds ``value`` (its type checked by the caller)."""
        if self.kind == "keyword":
            if "\0" in value:  # no indexed keyword holds one (the build refuses them)
                return self.rows[:0]
            slot = int(np.searchsorted(self.values, value))
            if slot == len(self.values) or self.values[slot] != value:
                return self.rows[:0]
            assert self.offsets is not None
            return self.rows[self.offsets[slot] : self.offsets[slot + 1]]
        if self.values.dtype.kind == "i":
            return self._int_range(value, value)
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any double: no stored value equals it
            return self.rows[:0]
        lo = np.searchsorted(self.values, number, side="left")
        hi = np.searchsorted(self.values, number, side="right")
        return self.rows[lo:hi]

    def rows_in_range(
        self, gt: float | None, gte: float | None, lt: float | None, lte: float | None
    ) -> np.ndarray:
        """Rows where one of the field's numbers lies within the bounds."""
        bounds = (gt, gte, lt, lte)
        if any(b is not None and b != b for b in bounds):  # no number compares with NaN
            return self.rows[:0]
        if self.values.dtype.kind == "i":
            # integers compared exactly: each bound becomes the integer it admits
            low, high = _INT64_MIN, _INT64_MAX
            if gte is not None:
                low = max(low, _ceil(gte))
            if gt is not None:
                low = max(low, _floor(gt) + 1)
            if lte is not None:
                high = min(high, _floor(lte))
            if lt is not None:
                high = min(high, _ceil(lt) - 1)
            return self._int_range(low, high)
        lo, hi = 0, len(self.values)
        if gte is not None:
            lo = max(lo, int(np.searchsorted(self.values, _as_double(gte), side="left")))
        if gt is not None:
            lo = max(lo, int(np.searchsorted(self.values, _as_double(gt), side="right")))
        if lte is not None:
            hi = min(hi, int(np.searchsorted(self.values, _as_double(lte), side="right")))
        if lt is not None:
            hi = min(hi, int(np.searchsorted(self.values, _as_double(lt), side="left")))
        return self.rows[lo:hi] if lo < hi else self.rows[:0]

    def _int_range(self, low: int, high: int) -> np.ndarray:
        """Rows whose integer lies in [low, high] (Python integers, any size)."""
        low, high = max(low, _INT64_MIN), min(high, _INT64_MAX)
        if low > high:
            return self.rows[:0]
        lo = int(np.searchsorted(self.values, np.int64(low), side="left"))
        hi = int(np.searchsorted(self.values, np.int64(high), side="right"))
        return self.rows[lo:hi]

    def present_mask(self, count: int) -> np.ndarray:
        """bool [count]: the rows whose field holds a value."""
        return np.unpackbits(self.present, count=count).view(np.bool_)

    # -- building and storing ---------------------------------------------------------------
    @classmethod
    def build(cls, name: str, kind: FieldType, payloads: Iterable[Any], count: int) -> FieldIndex:
        """Index field ``name`` of the ``count`` payloads (one per row, None for none)."""
        pair_rows: list[int] = []
        pair_values: list[Any] = []
        present = np.zeros(count, np.bool_)
        for row, payload in enumerate(payloads):
            for value in _values_of(field_value(payload, name)):
                if not _fits(kind, value):
                    article = "an" if kind == "integer" else "a"
                    problem = (
                        "a string with a NUL character, which a keyword index cannot hold"
                        if isinstance(value, str) and kind == "keyword"
                        else f"{value!r}, which is not {article} {kind} (its payload index type)"
                    )
                    raise InputError(f"payloads: row {row}: field {name!r} holds {problem}")
                pair_rows.append(row)
                pair_values.append(value)
                present[row] = True
        rows = np.asarray(pair_rows, np.int64)
        bitmap = np.packbits(present)
        if kind == "keyword":
            distinct, inverse = np.unique(np.asarray(pair_values, dtype=str), return_inverse=True)
            order = np.lexsort((rows, inverse))
            offsets = np.zeros(len(distinct) + 1, np.int64)
            np.cumsum(np.bincount(inverse, minlength=len(distinct)), out=offsets[1:])
            values = distinct if len(distinct) else np.zeros(0, "<U1")
            return cls(name, kind, values, rows[order].astype(np.int32), bitmap, offsets)
        dtype = np.float64 if kind == "float" else np.int64
        numbers = np.asarray(pair_values, dtype=dtype).reshape(-1)
        order = np.lexsort((rows, numbers))
        return cls(name, kind, numbers[order], rows[order].astype(np.int32), bitmap)

    def _names(self, slot: int) -> dict[str, str]:
        names = {part: f"pidx{slot}_{part}.npy" for part in ("values", "rows", "present")}
        if self.kind == "keyword":
            names["offsets"] = f"pidx{slot}_offsets.npy"
        return names

    @staticmethod
    def files(slot: int, kind: FieldType) -> set[str]:
        parts = ["values", "rows", "present", *(["offsets"] if kind == "keyword" else [])]
        return {f"pidx{slot}_{part}.npy" for part in parts}

    def save(self, writer: IndexWriter, slot: int) -> None:
        for part, file in self._names(slot).items():
            writer.save_array(file, getattr(self, part))

    @classmethod
    def load(
        cls, reader: IndexReader, name: str, kind: FieldType, slot: int, count: int
    ) -> FieldIndex:
        def array(part: str) -> np.ndarray:
            return reader.load_array(f"pidx{slot}_{part}.npy")

        values, rows, present = array("values"), array("rows"), array("present")
        offsets = array("offsets") if kind == "keyword" else None
        value_kind = {"keyword": "U", "float": "f"}.get(kind, "i")
        damaged = (
            values.dtype.kind != value_kind
            or (
                offsets is not None
                and (
                    offsets.dtype != np.int64
                    or (
                        len(offsets)
                        and (int(offsets[0]) != 0 or bool((np.diff(offsets) < 0).any()))
                    )
                )
            )
            or rows.ndim != 1
            or rows.dtype != np.int32
            or present.shape != ((count + 7) // 8,)
            or present.dtype != np.uint8
            or values.ndim != 1
            or (offsets is None and values.shape != rows.shape)
            or (
                offsets is not None
                and (offsets.shape != (len(values) + 1,) or int(offsets[-1]) != len(rows))
            )
            or (len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= count))
        )
        if damaged:
            raise FormatError(f"{reader.root}: damaged index, payload index of {name!r}")
        return cls(name, kind, values, rows, present, offsets)


class PayloadIndex:
    """The payload indexes of one index: field name -> :class:`FieldIndex`."""

    def __init__(self, fields: Mapping[str, FieldIndex]) -> None:
        self.fields = dict(fields)

    @classmethod
    def build(
        cls,
        spec: Mapping[str, FieldType],
        payloads: Sequence[Mapping[str, Any] | None] | None,
        count: int,
    ) -> PayloadIndex | None:
        if not spec:
            return None
        if payloads is None:
            raise ConfigError(
                f"payload index {', '.join(spec)}: the build has no payloads to index "
                "(give --payloads, or payload columns of a parquet file)"
            )
        return cls(
            {name: FieldIndex.build(name, kind, payloads, count) for name, kind in spec.items()}
        )

    def manifest_entry(self) -> dict[str, Any]:
        return {
            name: {"type": field.kind, "slot": slot}
            for slot, (name, field) in enumerate(self.fields.items())
        }

    def save(self, writer: IndexWriter) -> None:
        for slot, field in enumerate(self.fields.values()):
            field.save(writer, slot)

    @staticmethod
    def _entries(reader: IndexReader) -> list[tuple[str, FieldType, int]]:
        entry = reader.manifest.get(MANIFEST_FIELD)
        if entry is None:
            return []
        out = []
        ok = isinstance(entry, dict)
        for name, item in entry.items() if ok else []:
            ok = (
                isinstance(item, dict)
                and item.get("type") in FIELD_TYPES
                and isinstance(item.get("slot"), int)
                and not isinstance(item.get("slot"), bool)
                and 0 <= item["slot"] < len(entry)
            )
            if not ok:
                break
            out.append((name, item["type"], item["slot"]))
        if not ok or len({slot for _, _, slot in out}) != len(out):
            raise FormatError(f"{reader.manifest_path}: damaged manifest, {MANIFEST_FIELD}")
        return out

    @classmethod
    def files(cls, reader: IndexReader) -> set[str]:
        """The files of the payload indexes the manifest of ``reader`` records."""
        return set().union(*(FieldIndex.files(s, k) for _, k, s in cls._entries(reader)))

    @classmethod
    def load(cls, reader: IndexReader, count: int) -> PayloadIndex | None:
        entries = cls._entries(reader)
        if not entries:
            return None
        return cls({n: FieldIndex.load(reader, n, k, s, count) for n, k, s in entries})

    @property
    def nbytes(self) -> int:
        return sum(field.nbytes for field in self.fields.values())

    def arrays(self) -> list[np.ndarray]:
        return [a for field in self.fields.values() for a in field.arrays()]

    def describe(self) -> dict[str, str]:
        return {name: field.kind for name, field in self.fields.items()}
