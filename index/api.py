"""``build_index`` and ``load_index``: the entry points of the index layer."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .base import Index, IndexMeta
from .config import IndexConfig
from .errors import ConfigError, FormatError, InputError
from .metrics import check_metric
from .payload_index import PayloadIndex, parse_payload_index
from .payloads import MemoryPayloads, PayloadStore
from .registry import Kind, config_from_dict, get_kind, kind_names, parse_spec
from .storage import IndexReader, glint_version
from .validate import check_ids, check_threads

__all__ = ["build_index", "load_index"]

log = logging.getLogger(__name__)


def build_index(
    vectors: Any,
    spec: str | IndexConfig = "flat",
    metric: str = "ip",
    *,
    ids: Any | None = None,
    payloads: Sequence[dict[str, Any] | None] | None = None,
    payload_index: Mapping[str, str] | Sequence[str] | None = None,
    threads: int | None = None,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Index[Any]:
    """Build an index in memory from ``vectors`` (float32 [n, dim]), or for ``muvera`` from
    token sets (:class:`~glint.index.multivec.TokenSets`, a mapping or ``.npz`` with
    ``tokens`` [T, dim] and ``offsets`` [n + 1], or a list of [t_i, dim] matrices).

    ``ids`` (int64 [n], unique) are the external ids returned by searches (row numbers when
    omitted); ``payloads`` holds one JSON-able dict (or None) per vector. ``payload_index``
    names the payload fields that filters may use and their types (``{"lang": "keyword",
    "year": "integer"}``; types ``keyword``, ``integer``, ``float``, ``bool``). ``progress``
    is called with the number of vectors indexed since its last call.
    """
    config = parse_spec(spec)
    fields = parse_payload_index(payload_index)
    checked_metric = check_metric(metric)
    n_threads = check_threads(threads)
    kind = get_kind(config.kind)
    started = time.perf_counter()
    data, count, dim = kind.index.prepare_data(vectors, checked_metric)
    id_arr, store = _ids_and_payloads(count, ids, payloads)
    indexed = PayloadIndex.build(fields, payloads, count)
    build: dict[str, Any] = {"threads": n_threads, "glint_version": glint_version()}
    if source:
        build["source"] = source
    meta = IndexMeta(config, checked_metric, dim, count, id_arr, store, build, None, indexed)
    index = kind.index.build(data, meta, progress=progress)
    index.build_info["seconds"] = round(time.perf_counter() - started, 3)
    log.info("built %s over %d x %d in %.2fs", index.spec, count, dim, index.build_info["seconds"])
    return index


def _ids_and_payloads(
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


def load_index(path: str | os.PathLike[str], *, verify: bool = True) -> Index[Any]:
    """Open an index directory (arrays memory-mapped); ``verify`` checks every file's sha256.

    A damaged, edited or incomplete directory is refused with a one-line
    :class:`~glint.index.errors.FormatError` (see :mod:`glint.index.storage` for the rule)."""
    reader = IndexReader(path, verify=verify)
    kind, config = _kind_and_config(reader)
    metric = check_metric(reader.manifest["metric"])  # the reader checked it is one
    needed = kind.index.files_needed(reader, config, metric)
    reader.require(needed, f"this {kind.name} index ({config.spec()})")
    return kind.index._load(reader, IndexMeta.from_reader(reader, config, metric))


def _kind_and_config(reader: IndexReader) -> tuple[Kind, IndexConfig]:
    """The manifest's kind and config, checked against the registry: the kind known, the
    config valid for it, the spec and ``multivector`` agreeing with them."""
    manifest = reader.manifest

    def damaged(problem: str) -> FormatError:
        return FormatError(f"{reader.manifest_path}: damaged manifest, {problem}")

    name = manifest["kind"]
    if name not in kind_names():
        raise damaged(f"kind {name!r} is not an index kind ({', '.join(kind_names())})")
    kind = get_kind(name)
    try:
        config = config_from_dict(name, manifest["config"])
    except ConfigError as exc:
        raise damaged(f"config: {exc}") from None
    try:
        spec = parse_spec(manifest["spec"])
    except ConfigError as exc:
        raise damaged(f"spec {manifest['spec']!r}: {exc}") from None
    # versions 1 and 2 may spell a spec as an older glint did: the kind must still agree
    if spec.kind != name or (reader.format_version >= 3 and spec != config):
        raise damaged(f"spec {manifest['spec']!r} does not match the config ({config.spec()})")
    multivector = manifest.get("multivector", kind.index.multivector)
    if multivector != kind.index.multivector:
        raise damaged(f"multivector is {str(multivector).lower()} for a {name} index")
    return kind, config
