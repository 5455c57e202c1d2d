"""``build_index`` and ``load_index``: the entry points of the index layer."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import Index, default_threads, prepare_build_inputs, prepare_ids_payloads
from .config import IndexConfig, MuveraConfig, config_from_dict, parse_spec
from .errors import ConfigError, FormatError
from .flat import FlatIndex
from .hnsw import HNSWIndex
from .ivfpq import IVFPQIndex
from .metrics import check_metric
from .multivec import TokenSets, as_token_sets
from .muvera import MuveraIndex
from .storage import IndexReader, glint_version

__all__ = ["build_index", "load_index"]

log = logging.getLogger(__name__)

_INDEX_CLASSES: dict[str, type[Any]] = {
    "flat": FlatIndex,
    "hnsw": HNSWIndex,
    "ivfpq": IVFPQIndex,
    "muvera": MuveraIndex,
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
    """Build an index in memory from ``vectors`` (float32 [n, dim]), or for ``muvera`` from
    token sets (:class:`~glint.index.multivec.TokenSets`, a mapping or ``.npz`` with
    ``tokens`` [T, dim] and ``offsets`` [n + 1], or a list of [t_i, dim] matrices).

    ``ids`` (int64 [n], unique) are the external ids returned by searches (row numbers when
    omitted); ``payloads`` holds one JSON-able dict (or None) per vector. ``progress`` is
    called with the number of vectors indexed since its last call.
    """
    config = parse_spec(spec)
    checked_metric = check_metric(metric)
    n_threads = default_threads(threads)
    started = time.perf_counter()
    x: np.ndarray | TokenSets
    if isinstance(config, MuveraConfig):
        sets = as_token_sets(vectors, what="documents")
        x = sets.normalized() if checked_metric == "cos" else sets
        id_arr, store = prepare_ids_payloads(x.count, ids, payloads)
        count, dim = x.count, x.dim
    else:
        if isinstance(vectors, TokenSets):
            raise ConfigError(
                f"{config.kind} indexes single vectors; token sets need the muvera kind"
            )
        x, id_arr, store = prepare_build_inputs(vectors, checked_metric, ids, payloads)
        count, dim = x.shape
    build_info: dict[str, Any] = {"threads": n_threads, "glint_version": glint_version()}
    if source:
        build_info["source"] = source
    cls = _INDEX_CLASSES[config.kind]
    index: Index = cls.build(
        x,
        config,
        checked_metric,
        dim=dim,
        count=count,
        ids=id_arr,
        payloads=store,
        build=build_info,
        progress=progress,
    )
    index.build_info["seconds"] = round(time.perf_counter() - started, 3)
    log.info(
        "built %s over %d x %d in %.2fs",
        config.spec(),
        count,
        dim,
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
