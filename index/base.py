"""The protocol every index kind implements, and what they share.

:class:`Index` owns the parts common to all kinds: query validation, resolving a search's
parameters (:meth:`Index.resolve_params`), mapping internal rows to external ids, the
user-facing score convention, payloads, saving (through
:class:`~glint.index.storage.IndexWriter`) and statistics. A kind declares its
``config_type`` and ``params_type`` and implements :meth:`Index._search` (rows and internal
larger-is-better scores), :meth:`Index._defaults`, :meth:`Index._save_arrays`,
:meth:`Index._load` and :meth:`Index._arrays`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, cast

import numpy as np

from .config import IndexConfig, SearchParams
from .errors import ConfigError, FormatError, InputError
from .filters import AllowedRows, compile_filter, parse_filter
from .kernels.queries import finite_rows
from .metrics import Metric, larger_is_better, normalize_rows, to_user_scores
from .multivec import TokenSets
from .payload_index import MANIFEST_FIELD as PAYLOAD_INDEX_FIELD
from .payload_index import PayloadIndex
from .payloads import PAYLOAD_FILE, MemoryPayloads, PayloadStore, SqlitePayloads, write_payloads
from .storage import IndexReader, IndexWriter
from .validate import check_k, check_result_size, check_threads, check_vectors

__all__ = ["AllowedRows", "Index", "IndexMeta", "SearchResult", "check_k"]

IDS_FILE = "ids.npy"


_RESOLVED_KEPT = 64
P = TypeVar("P", bound=SearchParams)


def _request_key(
    k: int, cap: int | None, params: Mapping[str, Any] | None
) -> tuple[Any, ...] | None:
    """A hashable key for a search request, or None when a value is not hashable. Types are
    part of it: 1, 1.0 and True are one key to a dict, but not to the parser."""
    try:
        items = tuple(sorted((key, type(v), v) for key, v in (params or {}).items()))
        hash(items)
    except TypeError:  # an unhashable value, or keys that do not sort
        return None
    return (k, cap, items)


class SearchResult(NamedTuple):
    """Search output: ``ids`` int64 [nq, k] padded with -1, ``scores`` float32 [nq, k]."""

    ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True, eq=False)
class IndexMeta:
    """What every index holds besides its kind's own arrays: handed to a kind's ``build`` and
    ``_load`` as one value."""

    config: IndexConfig
    metric: Metric
    dim: int
    count: int
    ids: np.ndarray | None = None
    """External ids, int64 [count]; None means the row numbers."""
    payloads: PayloadStore | None = None
    build: Mapping[str, Any] = field(default_factory=dict)
    """How the index was built (threads, timings, what a build chose): ``glint info`` shows it."""
    reader: IndexReader | None = None
    """The directory the index was loaded from, if it was."""
    payload_index: PayloadIndex | None = None
    """The payload fields indexed for filters, if any."""

    def but(self, **changes: Any) -> IndexMeta:
        """A copy with ``changes`` (``build`` entries are merged into the current ones)."""
        if "build" in changes:
            changes["build"] = {**self.build, **changes["build"]}
        return replace(self, **changes)

    @classmethod
    def from_reader(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> IndexMeta:
        """The shared part of a verified index directory: dim, count, ids and payloads."""
        count = reader.count
        ids = None
        if has_ids(reader):
            ids = reader.load_array(IDS_FILE)
            if ids.shape != (count,) or ids.dtype != np.int64:
                raise FormatError(
                    f"{reader.root}: damaged index, {IDS_FILE} does not hold {count} int64 ids"
                )
        payloads = SqlitePayloads(reader.path(PAYLOAD_FILE)) if has_payloads(reader) else None
        build = reader.manifest.get("build", {})  # a mapping: the reader checked it
        payload_index = PayloadIndex.load(reader, count)
        return cls(config, metric, reader.dim, count, ids, payloads, build, reader, payload_index)


def has_ids(reader: IndexReader) -> bool:
    """Whether the index in ``reader`` maps rows to user ids (else ids are row numbers)."""
    return reader.flag("has_ids", IDS_FILE)


def has_payloads(reader: IndexReader) -> bool:
    """Whether the index in ``reader`` keeps payloads."""
    return reader.flag("has_payloads", PAYLOAD_FILE)


class Index(ABC, Generic[P]):
    """A searchable index of ``count`` vectors of dimension ``dim``, searched with
    parameters of type ``P`` (its ``params_type``)."""

    kind: ClassVar[str]
    config_type: ClassVar[type[IndexConfig]]
    params_type: ClassVar[type[SearchParams]]
    multivector: ClassVar[bool] = False

    def __init__(self, meta: IndexMeta) -> None:
        self.config = meta.config
        self.metric: Metric = meta.metric
        self.dim = meta.dim
        self.count = meta.count
        self._ids = meta.ids
        self._payloads = meta.payloads
        self.build_info: dict[str, Any] = dict(meta.build)
        self._reader = meta.reader
        self._payload_index = meta.payload_index
        self._id_order: np.ndarray | None = None  # argsort of the ids, made on first use
        # see resolve_params: requests resolved by request, and what this index issued
        self._resolved: dict[tuple[Any, ...], P] = {}
        self._issued: dict[int, tuple[P, int, int | None]] = {}

    # -- what a kind implements -------------------------------------------------------------
    @classmethod
    @abstractmethod
    def build(
        cls, data: Any, meta: IndexMeta, progress: Callable[[int], None] | None = None
    ) -> Index[Any]:
        """Build from validated ``data`` (float32 [count, dim], normalised for ``cos``; token
        sets for a multi-vector kind); ``progress`` is called with items indexed."""

    @abstractmethod
    def _defaults(self, k: int, params: P, cap: int | None) -> dict[str, Any]:
        """The values a search for ``k`` takes for the keys ``params`` leaves out (``cap``:
        the candidate cap the search will have, for defaults that follow other values)."""

    def _check(self, params: P) -> None:
        """Refuse resolved ``params`` that do not fit this index (a ConfigError naming why):
        checked as the search runs, after any cap a server applies."""
        return None  # every value fits, unless a kind says otherwise

    @abstractmethod
    def _search(
        self, queries: Any, k: int, params: P, threads: int, allowed: AllowedRows | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows int64 [nq, k] (-1 padded) and internal scores float32 [nq, k], best first;
        ``params`` is this kind's resolved :class:`SearchParams`. With ``allowed`` (a
        filter's rows, at least one), only those rows may be returned, and whenever ``k``
        of them exist, ``k`` are."""

    @abstractmethod
    def _save_arrays(self, writer: IndexWriter) -> None:
        """Write the kind's own arrays and files."""

    @classmethod
    @abstractmethod
    def _load(cls, reader: IndexReader, meta: IndexMeta) -> Index[Any]:
        """Rebuild the index from a verified directory."""

    @classmethod
    @abstractmethod
    def _files(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> set[str]:
        """The names of the kind's own files (as ``reader`` sees them) in a directory of an
        index with ``config`` and ``metric``: what its ``_save_arrays`` writes."""

    @classmethod
    def files_needed(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> set[str]:
        """Every file a directory of this kind holds for ``config`` and ``metric``: the
        kind's own, and the ids and payloads the manifest says the index has. A manifest
        lists exactly these (:meth:`IndexReader.require`)."""
        names = cls._files(reader, config, metric)
        if has_ids(reader):
            names.add(IDS_FILE)
        if has_payloads(reader):
            names.add(PAYLOAD_FILE)
        return names | PayloadIndex.files(reader)

    @abstractmethod
    def _arrays(self) -> Sequence[np.ndarray]:
        """The arrays the index searches, for memory accounting."""

    @classmethod
    def prepare_data(cls, data: Any, metric: Metric) -> tuple[Any, int, int]:
        """What a build of this kind indexes, validated, with its count and dimension: here
        float32 [n, d] vectors, normalised for ``cos``."""
        if isinstance(data, TokenSets):
            raise ConfigError(f"{cls.kind} indexes single vectors; token sets need the muvera kind")
        x = check_vectors(np.asarray(data), what="vectors")
        return (normalize_rows(x, what="vectors") if metric == "cos" else x), x.shape[0], x.shape[1]

    # -- searching --------------------------------------------------------------------------
    def resolve_params(
        self,
        k: int,
        params: Mapping[str, Any] | SearchParams | None = None,
        *,
        cap: int | None = None,
    ) -> P:
        """The search for ``k`` results that ``params`` (a mapping, or a :class:`SearchParams`)
        asks for: validated, with every default filled in, and with its candidate counts
        bounded by ``cap`` if given (:meth:`SearchParams.capped`: a given count over it is
        refused before anything else, a default one lowered to it).

        :meth:`search` takes what this index resolved for the same ``k`` as it is, and
        refuses values that do not fit this index (``nprobe`` over ``nlist``, say)."""
        k = check_k(k)
        if isinstance(params, SearchParams):
            issued = self._issued.get(id(params))
            if (
                issued is not None
                and issued[0] is params
                and issued[1] == k
                and (cap is None or cap == issued[2])
            ):
                return issued[0]
            cap = params.cap if cap is None else cap  # resolved again: under the same cap
            params = params.given()
        elif params is not None and not isinstance(params, Mapping):
            raise ConfigError(f"search parameters must be a mapping, got {type(params).__name__}")
        key = _request_key(k, cap, params)
        found = self._resolved.get(key) if key is not None else None
        if found is None:
            parsed = self._parse_params(params, cap)
            found = parsed.resolved(k, self._defaults(k, parsed, cap))
            found = found if cap is None else found.capped(cap)
            if len(self._issued) >= _RESOLVED_KEPT:  # a few, which most callers repeat
                self._resolved.clear()
                self._issued.clear()
            if key is not None:
                self._resolved[key] = found
            self._issued[id(found)] = (found, k, cap)
        return found

    def _parse_params(self, params: Mapping[str, Any] | None, cap: int | None) -> P:
        what = f"search on a {self.kind!r} index"
        return cast(P, self.params_type.parse(params, what=what, cap=cap))

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        params: Mapping[str, Any] | SearchParams | None = None,
        filter: Any = None,
        threads: int | None = None,
        **keywords: Any,
    ) -> SearchResult:
        """Search ``queries`` (float32 [nq, dim] or [dim]) for their ``k`` nearest vectors.

        ``params`` are the kind's search parameters (a mapping, or a :class:`SearchParams`
        from :meth:`resolve_params`); ``index.search(q, k=10, ef_search=64)`` gives them as
        keywords instead. ``filter`` (a :class:`~glint.wire.filters.Filter`, its JSON, or
        :class:`AllowedRows` from :meth:`allowed_rows`) restricts the search to the rows it
        allows; when ``k`` rows pass it, ``k`` are returned.
        """
        if keywords:
            if params is not None:
                raise ConfigError("give search parameters as params= or as keywords, not both")
            params = keywords
        resolved = self.resolve_params(k, params)
        q = self.prepare_queries(queries)
        check_result_size(len(q), int(k), count=self.count)  # the [nq, k] answer must fit
        self._check(resolved)
        if isinstance(filter, AllowedRows):
            allowed: AllowedRows | None = filter
            mask = filter.mask
            if mask.shape != (self.count,) or mask.dtype != np.uint8:
                raise InputError(
                    f"filter: allowed rows for {mask.shape[0] if mask.ndim == 1 else mask.shape} "
                    f"rows, this index has {self.count} (compile it with this index's "
                    "allowed_rows)"
                )
        else:
            allowed = self.allowed_rows(filter)
        if allowed is not None and allowed.count == 0:
            rows = np.full((len(q), int(k)), -1, np.int64)
            internal = np.full((len(q), int(k)), -np.inf, np.float32)
        else:
            rows, internal = self._search(q, int(k), resolved, check_threads(threads), allowed)
        return SearchResult(self._external_ids(rows), to_user_scores(self.metric, internal))

    def allowed_rows(self, filter: Any) -> AllowedRows | None:
        """The rows ``filter`` allows (None for no filter, or one without clauses); a filter
        this index cannot apply is a :class:`~glint.index.filters.FilterError` naming the
        field."""
        parsed = parse_filter(filter)
        if parsed is None:
            return None
        if self._ids is not None and self._id_order is None:
            self._id_order = np.argsort(self._ids, kind="stable")
        return compile_filter(parsed, self.count, self._payload_index, self._ids, self._id_order)

    def prepare_queries(self, queries: Any) -> Any:
        """Validate queries (float32 [nq, dim], finite) and apply the metric's preprocessing."""
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q.reshape(1, -1)
        if q.dtype == np.float32 and q.ndim == 2 and q.shape[1] == self.dim and len(q):
            # the common case in one compiled pass; on trouble, the checks below name it
            out = np.empty(q.shape, np.float32)
            if finite_rows(q, self.metric == "cos", out):
                return out
        q = check_vectors(q, what="queries", dim=self.dim)
        return normalize_rows(q, what="queries") if self.metric == "cos" else q

    def _external_ids(self, rows: np.ndarray) -> np.ndarray:
        if self._ids is None:
            return rows.astype(np.int64, copy=False)
        out = np.where(rows >= 0, self._ids[np.maximum(rows, 0)], -1)
        return out.astype(np.int64, copy=False)

    # -- what it is -------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        return self.config.spec()

    @property
    def path(self) -> Path | None:
        """The directory the index was loaded from, if any."""
        return self._reader.root if self._reader is not None else None

    @property
    def manifest(self) -> Mapping[str, Any] | None:
        """The manifest of the directory the index was loaded from (None if built in memory)."""
        return self._reader.manifest if self._reader is not None else None

    @property
    def larger_is_better(self) -> bool:
        return larger_is_better(self.metric)

    @property
    def has_payloads(self) -> bool:
        return self._payloads is not None

    @property
    def ids(self) -> np.ndarray | None:
        """The external ids, int64 ``[count]`` (read-only), or None when the ids are the row
        numbers."""
        if self._ids is None:
            return None
        view: np.ndarray = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def payload_index(self) -> dict[str, str]:
        """The indexed payload fields and their types (``{"lang": "keyword"}``)."""
        return {} if self._payload_index is None else self._payload_index.describe()

    @property
    def payload_index_bytes(self) -> int:
        """Bytes of the payload indexes (0 without any)."""
        return 0 if self._payload_index is None else self._payload_index.nbytes

    @property
    def memory_bytes(self) -> int:
        arrays = list(self._arrays())
        if self._ids is not None:
            arrays.append(self._ids)
        if self._payload_index is not None:
            arrays.extend(self._payload_index.arrays())
        return int(sum(a.nbytes for a in arrays))

    @property
    def disk_bytes(self) -> int:
        return self._reader.disk_bytes if self._reader is not None else 0

    def payloads(self, ids: Sequence[int] | np.ndarray) -> dict[int, dict[str, Any] | None]:
        """Payloads of the given external ids (``None`` where an id has none)."""
        wanted = [int(i) for i in np.asarray(ids).ravel() if i >= 0]
        if self._payloads is None:
            return dict.fromkeys(wanted)
        return self._payloads.get(wanted)

    def stats(self) -> dict[str, Any]:
        """What the index is and what it costs."""
        return {
            "kind": self.kind,
            "spec": self.spec,
            "metric": self.metric,
            "dim": self.dim,
            "count": self.count,
            "multivector": self.multivector,
            "memory_bytes": self.memory_bytes,
            "disk_bytes": self.disk_bytes,
            "has_payloads": self.has_payloads,
            "payload_index": self.payload_index,
            "build": self.build_info,
        }

    # -- lifecycle --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the index to directory ``path`` atomically."""
        with IndexWriter(path, overwrite=overwrite) as writer:
            self._save_arrays(writer)
            if self._ids is not None:
                writer.save_array(IDS_FILE, self._ids)
            if isinstance(self._payloads, MemoryPayloads):
                write_payloads(writer.path(PAYLOAD_FILE), self._payloads.items())
            elif isinstance(self._payloads, SqlitePayloads):
                write_payloads(writer.path(PAYLOAD_FILE), self._iter_stored_payloads())
            extra: dict[str, Any] = {}
            if self._payload_index is not None:
                self._payload_index.save(writer)
                extra[PAYLOAD_INDEX_FIELD] = self._payload_index.manifest_entry()
            return writer.commit(
                {
                    **extra,
                    "kind": self.kind,
                    "spec": self.spec,
                    "config": self.config.manifest_dict(),
                    "metric": self.metric,
                    "dim": self.dim,
                    "count": self.count,
                    "multivector": self.multivector,
                    "build": self.build_info,
                    "has_ids": self._ids is not None,
                    "has_payloads": self._payloads is not None,
                }
            )

    def _iter_stored_payloads(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        ids = self._ids if self._ids is not None else np.arange(self.count, dtype=np.int64)
        for start in range(0, len(ids), 1000):
            yield from self.payloads(ids[start : start + 1000]).items()

    def warm(self) -> None:
        """Run one tiny search, so that compiling or loading the kernels for this index's
        array types (numba, faiss) happens now and no request pays for it."""
        self.search(np.full((1, self.dim), 1e-3, np.float32), k=1, threads=1)

    def close(self) -> None:
        """Release open resources (payload connections)."""
        if self._payloads is not None:
            self._payloads.close()
