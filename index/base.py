"""The protocol every index kind implements, and what they share.

:class:`Index` owns the parts common to all kinds: query validation, search parameter parsing,
mapping internal rows to external ids, the user-facing score convention, payloads, saving
(through :class:`~glint.index.storage.IndexWriter`) and statistics. A kind implements
:meth:`Index._search` (rows and internal larger-is-better scores), :meth:`Index._save_arrays`,
:meth:`Index._load` and :meth:`Index._arrays`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .config import IndexConfig, SearchParams, parse_search_params, search_param_limit
from .errors import ConfigError, FormatError, InputError
from .metrics import Metric, larger_is_better, normalize_rows, to_user_scores
from .payloads import PAYLOAD_FILE, MemoryPayloads, PayloadStore, SqlitePayloads, write_payloads
from .readers import check_ids, check_vectors
from .storage import IndexReader, IndexWriter

__all__ = ["Index", "SearchResult", "check_k"]

IDS_FILE = "ids.npy"


class SearchResult(NamedTuple):
    """Search output: ``ids`` int64 [nq, k] padded with -1, ``scores`` float32 [nq, k]."""

    ids: np.ndarray
    scores: np.ndarray


def check_k(k: object) -> int:
    """``k`` must be a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)


def default_threads(threads: int | None) -> int:
    """``threads`` if given (>= 1), else the number of usable cores."""
    if threads is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    return threads


class Index(ABC):
    """A searchable index of ``count`` vectors of dimension ``dim``."""

    kind: ClassVar[str]
    multivector: ClassVar[bool] = False

    def __init__(
        self,
        *,
        config: IndexConfig,
        metric: Metric,
        dim: int,
        count: int,
        ids: np.ndarray | None = None,
        payloads: PayloadStore | None = None,
        build: Mapping[str, Any] | None = None,
        reader: IndexReader | None = None,
    ) -> None:
        self.config = config
        self.metric: Metric = metric
        self.dim = dim
        self.count = count
        self._ids = ids
        self._payloads = payloads
        self.build_info: dict[str, Any] = dict(build or {})
        self._reader = reader

    # -- what a kind implements -------------------------------------------------------------
    @abstractmethod
    def _search(
        self, queries: np.ndarray, k: int, params: SearchParams, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows int64 [nq, k] (-1 padded) and internal scores float32 [nq, k], best first."""

    @abstractmethod
    def _save_arrays(self, writer: IndexWriter) -> None:
        """Write the kind's own arrays and files."""

    @classmethod
    @abstractmethod
    def _load(cls, reader: IndexReader, common: dict[str, Any]) -> Index:
        """Rebuild the index from a verified directory; ``common`` holds the constructor's
        shared keyword arguments."""

    @abstractmethod
    def _arrays(self) -> Sequence[np.ndarray]:
        """The arrays the index searches, for memory accounting."""

    # -- shared behaviour -------------------------------------------------------------------
    @property
    def spec(self) -> str:
        return self.config.spec()

    @property
    def path(self) -> Path | None:
        """The directory the index was loaded from, if any."""
        return self._reader.root if self._reader is not None else None

    @property
    def larger_is_better(self) -> bool:
        return larger_is_better(self.metric)

    @property
    def has_payloads(self) -> bool:
        return self._payloads is not None

    @property
    def memory_bytes(self) -> int:
        arrays = list(self._arrays())
        if self._ids is not None:
            arrays.append(self._ids)
        return int(sum(a.nbytes for a in arrays))

    @property
    def disk_bytes(self) -> int:
        return self._reader.disk_bytes if self._reader is not None else 0

    def prepare_queries(self, queries: Any) -> np.ndarray:
        """Validate queries (float32 [nq, dim], finite) and apply the metric's preprocessing."""
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q.reshape(1, -1)
        q = check_vectors(q, what="queries", dim=self.dim)
        return normalize_rows(q) if self.metric == "cos" else q

    def search(
        self, queries: Any, k: int = 10, *, threads: int | None = None, **params: Any
    ) -> SearchResult:
        """Search ``queries`` (float32 [nq, dim] or [dim]) for their ``k`` nearest vectors."""
        k = check_k(k)
        parsed = self._parse_params(params)
        q = self.prepare_queries(queries)
        rows, internal = self._search(q, k, parsed, default_threads(threads))
        return SearchResult(self._external_ids(rows), to_user_scores(self.metric, internal))

    def _parse_params(self, params: Mapping[str, Any]) -> SearchParams:
        return parse_search_params(self.kind, params)

    def default_candidates(self, k: int) -> dict[str, int]:
        """The candidate counts a search for ``k`` results uses when its parameters leave them
        out (or give None), by parameter name."""
        return {}

    def capped_defaults(self, k: int, params: Mapping[str, Any], cap: int) -> dict[str, int]:
        """The candidate counts a search for ``k`` with ``params`` would take from defaults
        over ``cap``, each set to ``cap`` (or to the parameter's own limit, if lower): what a
        service adds to ``params`` so that its cap bounds every query's work."""
        out = {}
        for key, value in self.default_candidates(k).items():
            if params.get(key) is None and value > cap:
                limit = search_param_limit(self.kind, key)
                out[key] = cap if limit is None else min(cap, limit)
        return out

    def _external_ids(self, rows: np.ndarray) -> np.ndarray:
        if self._ids is None:
            return rows.astype(np.int64, copy=False)
        out = np.where(rows >= 0, self._ids[np.maximum(rows, 0)], -1)
        return out.astype(np.int64, copy=False)

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
            "build": self.build_info,
        }

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
            return writer.commit(
                {
                    "kind": self.kind,
                    "spec": self.spec,
                    "config": self.config.manifest_dict(),
                    "metric": self.metric,
                    "dim": self.dim,
                    "count": self.count,
                    "multivector": self.multivector,
                    "build": self.build_info,
                }
            )

    def _iter_stored_payloads(self) -> Any:
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

    @classmethod
    def load_from(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> Index:
        manifest = reader.manifest
        dim, count = manifest["dim"], manifest["count"]
        if not isinstance(dim, int) or not isinstance(count, int) or dim < 1 or count < 1:
            raise FormatError(f"{reader.root}: damaged manifest, bad dim/count {dim!r}/{count!r}")
        ids = None
        if reader.has(IDS_FILE):
            ids = reader.load_array(IDS_FILE)
            if ids.shape != (count,) or ids.dtype != np.int64:
                raise FormatError(
                    f"{reader.root}: damaged index, ids.npy does not hold {count} ids"
                )
        payloads = SqlitePayloads(reader.path(PAYLOAD_FILE)) if reader.has(PAYLOAD_FILE) else None
        common = {
            "config": config,
            "metric": metric,
            "dim": dim,
            "count": count,
            "ids": ids,
            "payloads": payloads,
            "build": manifest.get("build") or {},
            "reader": reader,
        }
        return cls._load(reader, common)


def prepare_build_inputs(
    vectors: Any,
    metric: Metric,
    ids: Any | None,
    payloads: Sequence[dict[str, Any] | None] | None,
) -> tuple[np.ndarray, np.ndarray | None, PayloadStore | None]:
    """Validate what a build is given; returns (vectors for the metric, ids, payload store)."""
    x = check_vectors(np.asarray(vectors), what="vectors")
    id_arr, store = prepare_ids_payloads(x.shape[0], ids, payloads)
    if metric == "cos":
        x = normalize_rows(x)
    return x, id_arr, store


def prepare_ids_payloads(
    n: int, ids: Any | None, payloads: Sequence[dict[str, Any] | None] | None
) -> tuple[np.ndarray | None, PayloadStore | None]:
    """Validate the ids and payloads of ``n`` indexed items."""
    id_arr = None if ids is None else check_ids(np.asarray(ids), n)
    store = None
    if payloads is not None:
        if len(payloads) != n:
            raise InputError(f"payloads: {len(payloads)} payloads for {n} vectors")
        store = MemoryPayloads(
            id_arr if id_arr is not None else np.arange(n, dtype=np.int64), payloads
        )
    return id_arr, store
