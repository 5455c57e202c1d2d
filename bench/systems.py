"""The systems under test: glint specs and the in-process peers (faiss, hnswlib).

A config string names what to build and how to search it:

- a glint spec, optionally with fixed search parameters after ``;``:
  ``hnsw:m=32,ef_construction=200,storage=lvq4x8;rerank=40``;
- a peer, optionally with build parameters: ``faiss-flat`` (exact), ``faiss-hnsw``,
  ``faiss-hnsw-sq8`` and ``hnswlib`` (``m``/``ef_construction``, default 32/200), and
  ``faiss-ivfpq`` (``nlist``, ``m``, ``nbits``, ``refine=sq8|flat|none``; search parameter
  ``rerank_k`` after ``;``), the faiss-only equivalent of glint's ``ivfpq``: the same
  index_factory string, with faiss's ``IndexRefine`` over an 8-bit scalar quantizer (or the
  float vectors) in place of glint's LVQ-8 (or f32) re-ranking.

Each system builds an index into a directory (:func:`build_into`) and loads it back
(:func:`load_searcher`), so that the search can run in a fresh process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .measure import Searcher

__all__ = [
    "DEFAULT_SWEEPS",
    "PEERS",
    "ConfigSpec",
    "build_into",
    "import_system",
    "load_searcher",
    "parse_config",
]

log = logging.getLogger(__name__)

EF_SWEEP = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
DEFAULT_SWEEPS: dict[str, tuple[int, ...]] = {
    "ef_search": EF_SWEEP,
    "efSearch": EF_SWEEP,
    "ef": EF_SWEEP,
    "nprobe": (1, 2, 4, 8, 16, 32, 64, 128, 256),
    "candidates": (10, 20, 50, 100, 200, 500, 1000, 2000),
}
GLINT_KNOBS = ("ef_search", "nprobe", "candidates")
PEERS: dict[str, tuple[str, str | None]] = {
    "faiss-flat": ("faiss", None),
    "faiss-hnsw": ("faiss", "efSearch"),
    "faiss-hnsw-sq8": ("faiss", "efSearch"),
    "hnswlib": ("hnswlib", "ef"),
    "faiss-ivfpq": ("faiss", "nprobe"),
}
GRAPH_DEFAULTS: dict[str, Any] = {"m": 32, "ef_construction": 200}
PEER_DEFAULTS: dict[str, dict[str, Any]] = {
    "faiss-flat": {},
    "faiss-hnsw": GRAPH_DEFAULTS,
    "faiss-hnsw-sq8": GRAPH_DEFAULTS,
    "hnswlib": GRAPH_DEFAULTS,
    "faiss-ivfpq": {"nlist": 1024, "m": 96, "nbits": 4, "refine": "sq8"},
}
PEER_SEARCH_KEYS: dict[str, tuple[str, ...]] = {"faiss-ivfpq": ("rerank_k",)}


@dataclass(frozen=True)
class ConfigSpec:
    """A parsed config: what builds (``build``), how it searches, and its sweep."""

    name: str
    system: str
    build: str
    build_params: dict[str, Any] = field(default_factory=dict)
    search_params: dict[str, Any] = field(default_factory=dict)
    knob: str | None = None
    knob_values: tuple[int, ...] = ()

    def sweep(self) -> tuple[int | None, ...]:
        """The knob values to measure; a config without a knob is a single point."""
        return self.knob_values if self.knob else (None,)


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _parse_pairs(text: str, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ValueError(f"{what}: {item!r} is not key=value")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _peer_config(text: str, knob_values: tuple[int, ...] | None) -> ConfigSpec:
    head, _, search_text = text.partition(";")
    name, _, rest = head.partition(":")
    system, knob = PEERS[name]
    defaults = PEER_DEFAULTS[name]
    given = _parse_pairs(rest, f"peer config {text!r}")
    unknown = set(given) - set(defaults)
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(f"peer config {text!r}: unknown keys {sorted(unknown)}; valid: {valid}")
    params = {**defaults, **given}
    search = _parse_pairs(search_text, f"search parameters of {text!r}")
    bad = set(search) - set(PEER_SEARCH_KEYS.get(name, ()))
    if bad:
        raise ValueError(f"peer config {text!r}: unknown search parameters {sorted(bad)}")
    label = name + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
    label += ";" + ",".join(f"{k}={v}" for k, v in search.items()) if search else ""
    values = knob_values if knob_values is not None else DEFAULT_SWEEPS.get(knob or "", ())
    return ConfigSpec(label, system, name, params, search, knob, tuple(values) if knob else ())


def _glint_config(text: str, knob_values: tuple[int, ...] | None) -> ConfigSpec:
    from glint.index import parse_search_params, parse_spec
    from glint.index.errors import ConfigError

    spec_text, _, params_text = text.partition(";")
    config = parse_spec(spec_text.strip())
    params = _parse_pairs(params_text, f"search parameters of {text!r}")
    parse_search_params(config.kind, params)
    knob = None
    for candidate in GLINT_KNOBS:
        if candidate in params:
            continue
        try:
            parse_search_params(config.kind, {**params, candidate: 10})
        except ConfigError:
            continue
        knob = candidate
        break
    spec = config.spec()
    name = spec + (";" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
    values = knob_values if knob_values is not None else DEFAULT_SWEEPS.get(knob or "", ())
    return ConfigSpec(name, "glint", spec, {}, params, knob, tuple(values) if knob else ())


def parse_config(text: str, knob_values: tuple[int, ...] | None = None) -> ConfigSpec:
    """Parse a config string (a peer name or a glint spec); ``knob_values`` overrides the sweep."""
    text = text.strip()
    if text.partition(";")[0].partition(":")[0] in PEERS:
        return _peer_config(text, knob_values)
    return _glint_config(text, knob_values)


# -- building ---------------------------------------------------------------------------------
def _normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-30), dtype=np.float32)


def _faiss_index(config: ConfigSpec, dim: int, metric: str) -> Any:
    import faiss

    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if config.build == "faiss-flat":
        return faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
    m = config.build_params["m"]
    if config.build == "faiss-ivfpq":
        from glint.index.ivfpq import factory_string

        p = config.build_params
        text = factory_string(int(p["nlist"]), int(m), int(p["nbits"]), False)
        refine = {"sq8": ",Refine(SQ8)", "flat": ",RFlat", "none": ""}[str(p["refine"])]
        return faiss.index_factory(dim, text + refine, faiss_metric)
    if config.build == "faiss-hnsw":
        index = faiss.IndexHNSWFlat(dim, m, faiss_metric)
    else:
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, m, faiss_metric)
    index.hnsw.efConstruction = config.build_params["ef_construction"]
    return index


def build_into(
    config: ConfigSpec, base: np.ndarray, metric: str, out: Path, threads: int
) -> dict[str, Any]:
    """Build ``config`` over ``base`` into directory ``out`` (created); returns build info:
    ``build_seconds`` and, for peers, ``memory_bytes`` (the library's own accounting)."""
    out.mkdir(parents=True, exist_ok=True)
    if config.system == "glint":
        from glint.index import build_index

        index = build_index(base, config.build, metric=metric, threads=threads)
        index.save(out / "index")
        return {"build_seconds": float(index.build_info["seconds"])}
    x = _normalized(base) if metric == "cos" else np.ascontiguousarray(base, dtype=np.float32)
    if config.system == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)
        started = time.perf_counter()
        index = _faiss_index(config, x.shape[1], metric)
        if not index.is_trained:
            index.train(x)
        index.add(x)
        seconds = time.perf_counter() - started
        faiss.write_index(index, str(out / "index.faiss"))
        return {"build_seconds": seconds, "memory_bytes": len(faiss.serialize_index(index))}
    import hnswlib

    space = {"ip": "ip", "l2": "l2", "cos": "cosine"}[metric]
    started = time.perf_counter()
    index = hnswlib.Index(space=space, dim=x.shape[1])
    index.init_index(
        max_elements=x.shape[0],
        M=config.build_params["m"],
        ef_construction=config.build_params["ef_construction"],
        random_seed=100,
    )
    index.set_num_threads(threads)
    index.add_items(x, np.arange(x.shape[0]))
    seconds = time.perf_counter() - started
    index.save_index(str(out / "index.hnswlib"))
    return {"build_seconds": seconds, "memory_bytes": (out / "index.hnswlib").stat().st_size}


# -- searching --------------------------------------------------------------------------------
class GlintSearcher:
    def __init__(self, config: ConfigSpec, path: Path) -> None:
        from glint.index import load_index

        self.index = load_index(path / "index", verify=False)
        self.knob = config.knob
        self.params = dict(config.search_params)
        self.memory_bytes = int(self.index.memory_bytes)
        self.disk_bytes: int | None = int(self.index.disk_bytes)

    def search(
        self, queries: np.ndarray, k: int, threads: int, knob_value: int | None
    ) -> np.ndarray:
        params = dict(self.params)
        if self.knob is not None and knob_value is not None:
            params[self.knob] = knob_value
        return self.index.search(queries, k, threads=threads, **params).ids


class FaissSearcher:
    def __init__(self, config: ConfigSpec, path: Path, metric: str, memory_bytes: int) -> None:
        import faiss

        self._faiss = faiss
        self.index = faiss.read_index(str(path / "index.faiss"))
        self.cos = metric == "cos"
        self.knob = config.knob
        self.has_knob = config.knob is not None
        self.rerank_k = config.search_params.get("rerank_k")
        self.refine = config.build_params.get("refine", "none") != "none"
        self.memory_bytes = memory_bytes
        self.disk_bytes: int | None = (path / "index.faiss").stat().st_size

    def search(
        self, queries: np.ndarray, k: int, threads: int, knob_value: int | None
    ) -> np.ndarray:
        faiss = self._faiss
        faiss.omp_set_num_threads(threads)
        q = _normalized(queries) if self.cos else queries
        if self.knob == "nprobe":
            params = faiss.SearchParametersIVF(nprobe=int(knob_value or 1))
            if self.refine:
                factor = max(1.0, (self.rerank_k or 10 * k) / k)
                params = faiss.IndexRefineSearchParameters(
                    k_factor=factor, base_index_params=params
                )
            _, ids = self.index.search(q, k, params=params)
            return ids
        if self.has_knob and knob_value is not None:
            self.index.hnsw.efSearch = int(knob_value)
        _, ids = self.index.search(q, k)
        return ids


class HnswlibSearcher:
    def __init__(self, path: Path, metric: str, dim: int) -> None:
        import hnswlib

        space = {"ip": "ip", "l2": "l2", "cos": "cosine"}[metric]
        self.index = hnswlib.Index(space=space, dim=dim)
        self.index.load_index(str(path / "index.hnswlib"))
        self.memory_bytes = (path / "index.hnswlib").stat().st_size
        self.disk_bytes: int | None = self.memory_bytes

    def search(
        self, queries: np.ndarray, k: int, threads: int, knob_value: int | None
    ) -> np.ndarray:
        if knob_value is not None:
            self.index.set_ef(int(knob_value))
        labels, _ = self.index.knn_query(queries, k=k, num_threads=threads)
        return labels.astype(np.int64, copy=False)


def import_system(config: ConfigSpec) -> None:
    """Import the system's library (so that the import is not counted as index memory)."""
    import importlib

    importlib.import_module({"glint": "glint.index"}.get(config.system, config.system))


def load_searcher(
    config: ConfigSpec, path: Path, metric: str, dim: int, info: dict[str, Any]
) -> Searcher:
    """Load what :func:`build_into` wrote; ``info`` is the build info it returned."""
    if config.system == "glint":
        return GlintSearcher(config, path)
    if config.system == "faiss":
        return FaissSearcher(config, path, metric, int(info["memory_bytes"]))
    return HnswlibSearcher(path, metric, dim)
