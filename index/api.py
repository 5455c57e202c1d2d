"""``build_index`` and ``load_index``: the entry points of the index layer."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from .base import Index, default_threads, prepare_build_inputs
from .config import IndexConfig, config_from_dict, parse_spec
from .errors import FormatError
from .flat import FlatIndex
from .hnsw import HNSWIndex
from .ivfpq import IVFPQIndex
from .metrics import check_metric
from .storage import IndexReader, glint_version

__all__ = ["build_index", "load_index"]

log = logging.getLogger(__name__)

_INDEX_CLASSES: dict[str, type[Any]] = {
    "flat": FlatIndex,
    "hnsw": HNSWIndex,
    "ivfpq": IVFPQIndex,
}


def build_index(
    vectors: Any,
    spec: str | IndexConfig = "flat",
    metric: str = "ip",
    *,
    ids: Any | None = None,
    payloads: Sequence[dict[str, Any] | None] | None = None,
    threads: int | None = None,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Index:
    """Build an index in memory from ``vectors`` (float32 [n, dim]).

    ``ids`` (int64 [n], unique) are the external ids returned by searches (row numbers when
    omitted); ``payloads`` holds one JSON-able dict (or None) per vector. ``progress`` is
    called with the number of vectors indexed since its last call.
    """
    config = parse_spec(spec)
    checked_metric = check_metric(metric)
    n_threads = default_threads(threads)
    started = time.perf_counter()
    x, id_arr, store = prepare_build_inputs(vectors, checked_metric, ids, payloads)
    build_info: dict[str, Any] = {"threads": n_threads, "glint_version": glint_version()}
    if source:
        build_info["source"] = source
    cls = _INDEX_CLASSES[config.kind]
    index: Index = cls.build(
        x,
        config,
        checked_metric,
        dim=x.shape[1],
        count=x.shape[0],
        ids=id_arr,
        payloads=store,
        build=build_info,
        progress=progress,
    )
    index.build_info["seconds"] = round(time.perf_counter() - started, 3)
    log.info(
        "built %s over %d x %d in %.2fs",
        config.spec(),
        x.shape[0],
        x.shape[1],
        index.build_info["seconds"],
    )
    return index


def load_index(path: str | os.PathLike[str], *, verify: bool = True) -> Index:
    """Open an index directory (arrays memory-mapped); ``verify`` checks every file's sha256."""
    reader = IndexReader(path, verify=verify)
    manifest = reader.manifest
    kind = manifest["kind"]
    if kind not in _INDEX_CLASSES:
        raise FormatError(f"{reader.root}: unknown index kind {kind!r} in the manifest")
    try:
        config = config_from_dict(kind, manifest["config"])
        metric = check_metric(manifest["metric"])
    except ValueError as exc:
        raise FormatError(f"{reader.root}: damaged manifest ({exc})") from None
    index: Index = _INDEX_CLASSES[kind].load_from(reader, config, metric)
    return index
