"""``hnsw``: a graph index over f32, f16 or LVQ-compressed storage.

The graph is built by faiss's HNSW on the float vectors (multi-threaded C++), exported into
plain arrays, and its layer 0 refined by one Vamana pass (:func:`refine_layer0`); the search
is glint's own (:mod:`glint.index.kernels.graph`) over the chosen
storage, so the served index holds no float32 copy unless ``storage=f32``. With a residual
level (``lvq4x4``, ``lvq4x8``) the ``rerank`` best candidates are re-scored with it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import Field

from .base import AllowedRows, Index, IndexMeta
from .config import IndexConfig, SearchParams, candidate_count
from .errors import ConfigError, FormatError
from .kernels.graph import FILTERED, GRAPH, SCAN, graph_search
from .kernels.refine import merge_reverse, prune_beams
from .metrics import Metric
from .registry import register
from .storage import IndexReader, IndexWriter
from .threads import faiss_threads, run_spans
from .vecstore import Storage, VectorStore

__all__ = ["Graph", "HNSWConfig", "HNSWIndex", "HNSWSearchParams", "build_graph"]

log = logging.getLogger(__name__)

_ADD_CHUNK = 16384
# Layer 0's refinement (see refine_layer0): the pruning slack (1 keeps the graph faiss built)
# and the beam each node's new neighbours are chosen from. Measured on dense-minilm-100k
# (docs/design-lvq-hnsw.md): 1.1 and 64 reach recall 0.957 at ef_search 16 where faiss's graph
# gives 0.921; wider beams, more slack or a second pass cost build time and gained nothing.
LAYER0_ALPHA = 1.1
LAYER0_BEAM = 64
# A filtered search scans its allowed rows exactly when they are few, and searches the graph
# admitting only them otherwise (see plan_filter). The scan costs its count of rows; the graph
# arm costs about as much as scanning FILTER_SCAN_ROWS rows at 10% selectivity or more, and
# FILTER_SCAN_GROWTH times that more per decade of selectivity below (its walks between
# allowed rows grow longer). Calibrated on dense-minilm-100k by bench/filtered.py, both arms
# forced (docs/design-filtered-search.md).
FILTER_SCAN_ROWS = 5_500
FILTER_SCAN_GROWTH = 1.2
# The graph arm gives a query up (and scans its rows instead) once it has scored this share
# of the allowed rows: past it, the exact scan would have been the cheaper arm.
FILTER_GIVE_UP = 0.5


class Graph:
    """HNSW adjacency as arrays (see :mod:`glint.index.kernels.graph` for the layout).

    On disk, every node has a top layer (``graph_levels.npy``) and an offset into the upper
    layers' rows (``graph_upper_offsets.npy``, int64 [n + 1]). In memory only the nodes that
    reach layer 1 (about 1 in m) keep theirs: ``upper_nodes`` (sorted ids), ``upper_levels``
    and ``upper_starts``. That saves the 9 bytes per vector the two full arrays cost, most of
    what glint's graph held beyond SVS's flat Vamana graph.
    """

    FILES = (
        "graph_layer0.npy",
        "graph_levels.npy",
        "graph_upper_offsets.npy",
        "graph_upper.npy",
        "graph_entry.npy",
    )

    def __init__(
        self,
        layer0: np.ndarray,
        upper_nodes: np.ndarray,
        upper_levels: np.ndarray,
        upper_starts: np.ndarray,
        upper: np.ndarray,
        entry: int,
        max_level: int,
    ) -> None:
        self.layer0 = layer0
        self.upper_nodes = upper_nodes
        self.upper_levels = upper_levels
        self.upper_starts = upper_starts
        self.upper = upper
        self.entry = entry
        self.max_level = max_level

    @classmethod
    def from_levels(
        cls,
        layer0: np.ndarray,
        levels: np.ndarray,
        upper_offsets: np.ndarray,
        upper: np.ndarray,
        entry: int,
        max_level: int,
    ) -> Graph:
        """From the on-disk form: every node's top layer and upper-row offset."""
        nodes = np.flatnonzero(levels > 0)
        return cls(
            layer0,
            nodes.astype(np.int32),
            np.ascontiguousarray(levels[nodes], dtype=np.int8),
            np.ascontiguousarray(upper_offsets[nodes], dtype=np.int64),
            upper,
            entry,
            max_level,
        )

    def arrays(self) -> list[np.ndarray]:
        return [self.layer0, self.upper_nodes, self.upper_levels, self.upper_starts, self.upper]

    def disk_arrays(self) -> list[np.ndarray]:
        """layer0, levels, upper_offsets, upper: the on-disk form."""
        count = self.layer0.shape[0]
        levels = np.zeros(count, np.int8)
        levels[self.upper_nodes] = self.upper_levels
        upper_offsets = np.zeros(count + 1, np.int64)
        np.cumsum(levels, dtype=np.int64, out=upper_offsets[1:])
        return [self.layer0, levels, upper_offsets, self.upper]

    def save(self, writer: IndexWriter) -> None:
        for name, value in zip(self.FILES[:4], self.disk_arrays(), strict=True):
            writer.save_array(name, value)
        writer.save_array(self.FILES[4], np.array([self.entry, self.max_level], np.int64))

    @classmethod
    def load(cls, reader: IndexReader, count: int, m: int) -> Graph:
        layer0, levels, upper_offsets, upper, head = (reader.load_array(f) for f in cls.FILES)
        # the kernels take these dtypes as they are: a graph of others is not this format's
        wanted = {
            "graph_layer0.npy": (layer0, (count, 2 * m), np.int32),
            "graph_levels.npy": (levels, (count,), np.int8),
            "graph_upper_offsets.npy": (upper_offsets, (count + 1,), np.int64),
            "graph_upper.npy": (upper, (*upper.shape[:1], m), np.int32),  # rows: any number
            "graph_entry.npy": (head, (2,), np.int64),
        }
        problems = [
            name
            for name, (array, shape, dtype) in wanted.items()
            if array.shape != shape or array.dtype != dtype
        ]
        if problems:
            raise FormatError(
                f"{reader.root}: damaged index, bad shape or dtype in {', '.join(problems)}"
            )
        entry, max_level = int(head[0]), int(head[1])
        if not 0 <= entry < count:
            raise FormatError(f"{reader.root}: damaged index, entry point {entry} out of range")
        # a node's upper rows follow the previous node's: offsets are the running sum of levels
        steps = np.diff(upper_offsets)
        if (
            upper_offsets[0] != 0
            or upper_offsets[-1] != upper.shape[0]
            or levels.min(initial=0) < 0
            or not np.array_equal(steps, levels)
        ):
            raise FormatError(
                f"{reader.root}: damaged index, graph_upper_offsets.npy does not match "
                "graph_levels.npy and graph_upper.npy"
            )
        return cls.from_levels(layer0, levels, upper_offsets, upper, entry, max_level)


def build_graph(
    x: np.ndarray,
    m: int,
    ef_construction: int,
    metric: Metric,
    threads: int,
    progress: Callable[[int], None] | None = None,
    alpha: float = 1.0,
) -> Graph:
    """Build an HNSW graph over float32 ``x`` with faiss and export it; with ``alpha`` > 1,
    refine its layer 0 (:func:`refine_layer0`)."""
    import faiss

    n, d = x.shape
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexHNSWFlat(d, m, faiss_metric)
    index.hnsw.efConstruction = ef_construction
    with faiss_threads(threads):
        for start in range(0, n, _ADD_CHUNK):
            index.add(np.ascontiguousarray(x[start : start + _ADD_CHUNK], dtype=np.float32))
            if progress is not None:
                progress(min(_ADD_CHUNK, n - start))
    hnsw = index.hnsw
    levels = faiss.vector_to_array(hnsw.levels).astype(np.int64) - 1  # faiss stores level + 1
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    neighbors = faiss.vector_to_array(hnsw.neighbors).astype(np.int32)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    width0 = int(cum[1] - cum[0])
    layer0 = neighbors[offsets[:-1, None] + cum[0] + np.arange(width0)]
    upper_counts = np.maximum(levels, 0)
    upper_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(upper_counts, out=upper_offsets[1:])
    nodes = np.repeat(np.arange(n), upper_counts)
    layer = np.arange(len(nodes)) - upper_offsets[nodes] + 1  # 1..levels[node]
    starts = offsets[nodes] + cum[layer]
    upper = neighbors[starts[:, None] + np.arange(m)] if len(nodes) else np.zeros((0, m), np.int32)
    graph = Graph.from_levels(
        np.ascontiguousarray(layer0, dtype=np.int32),
        levels.astype(np.int8),
        upper_offsets,
        np.ascontiguousarray(upper, dtype=np.int32),
        int(hnsw.entry_point),
        int(hnsw.max_level),
    )
    if alpha > 1.0 and (metric != "ip" or _unit_rows(x)):
        graph = refine_layer0(x, graph, metric, alpha, LAYER0_BEAM, threads)
    return graph


def _unit_rows(x: np.ndarray) -> bool:
    """Whether every row has length 1 (to 1e-3): the refinement prunes by L2 distance, which
    orders pairs as the inner product does only on unit vectors, so ``ip`` over vectors of
    other lengths keeps faiss's graph."""
    sq = np.einsum("ij,ij->i", x, x)
    return bool(np.all(np.abs(sq - 1.0) <= 2e-3))


_REFINE_CHUNK = 512  # nodes searched, then pruned, per compiled call


def refine_layer0(
    x: np.ndarray, graph: Graph, metric: Metric, alpha: float, beam: int, threads: int
) -> Graph:
    """``graph`` with layer 0 rebuilt by one Vamana pass (:mod:`glint.index.kernels.refine`):
    each node's neighbours chosen with slack ``alpha`` from a beam of width ``beam`` searched
    on the current graph, then the reverse edges added. Deterministic for any ``threads``."""
    n = x.shape[0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.einsum("ij,ij->i", x, x).astype(np.float32)
    store = VectorStore.encode(x, "f32")
    kind, fdata, hdata, codes, lut = store.kernel_args()
    no_mean = np.zeros(x.shape[1], np.float32)
    l2 = metric == "l2"
    alpha2 = float(alpha) ** 2
    old = graph.layer0
    graph_args = (
        old, graph.upper_nodes, graph.upper_levels, graph.upper_starts, graph.upper,
        graph.entry, graph.max_level,
    )  # fmt: skip
    forward = np.empty_like(old)
    scratch = threading.local()

    def choose(span: tuple[int, int]) -> None:
        if not hasattr(scratch, "visited"):
            scratch.visited = np.zeros(n, np.uint16)
            scratch.tag_state = np.zeros(1, np.int64)
            scratch.ids = np.empty((_REFINE_CHUNK, beam), np.int64)
            scratch.scores = np.empty((_REFINE_CHUNK, beam), np.float32)
        for a in range(span[0], span[1], _REFINE_CHUNK):
            b = min(a + _REFINE_CHUNK, span[1])
            ids, scores = scratch.ids[: b - a], scratch.scores[: b - a]
            # fmt: off
            graph_search(
                x[a:b], no_mean, kind, l2, 0, -1, fdata, hdata, codes, lut,
                store.residual_array(), *graph_args, beam, 0, ids, scores, ids, scores,
                scratch.visited, scratch.tag_state,
            )
            # fmt: on
            prune_beams(x, norms, a, ids, l2, scores, old, alpha2, forward)

    run_spans(n, threads, choose)
    # every edge p -> q also offered as q -> p; sources ascending within each target
    valid = forward >= 0
    targets = forward[valid]
    sources = np.repeat(np.arange(n, dtype=np.int64), valid.sum(axis=1))
    order = np.argsort(targets, kind="stable")
    rev_sources = np.ascontiguousarray(sources[order])
    rev_starts = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(targets, minlength=n), out=rev_starts[1:])
    layer0 = np.empty_like(old)

    def merge(span: tuple[int, int]) -> None:
        merge_reverse(x, norms, span[0], span[1], forward, rev_starts, rev_sources, alpha2, layer0)

    run_spans(n, threads, merge)
    return Graph(
        layer0, graph.upper_nodes, graph.upper_levels, graph.upper_starts, graph.upper,
        graph.entry, graph.max_level,
    )  # fmt: skip


class HNSWConfig(IndexConfig):
    """A hierarchical navigable small-world graph over f32, f16 or LVQ-compressed storage."""

    kind: ClassVar[str] = "hnsw"
    m: int = Field(default=32, ge=4, le=128, description="Graph degree (2m on layer 0).")
    ef_construction: int = Field(default=200, ge=8, le=4096)
    storage: Storage = "lvq4x8"


FilterArm = Literal["auto", "graph", "scan"]


class HNSWSearchParams(SearchParams):
    ef_search: int = candidate_count(default=64, le=16384, description="Beam width on layer 0.")
    rerank: int | None = candidate_count(
        le=16384,
        description="Candidates re-scored with the residual level (default: all ef_search).",
    )
    filter_arm: FilterArm = Field(
        default="auto",
        description="With a filter: 'scan' scores every allowed row, 'graph' searches the "
        "graph admitting only allowed rows, 'auto' lets the planner choose by their count.",
    )


class HNSWIndex(Index[HNSWSearchParams]):
    kind = "hnsw"
    config_type = HNSWConfig
    params_type = HNSWSearchParams
    config: HNSWConfig

    def __init__(self, meta: IndexMeta, graph: Graph, store: VectorStore) -> None:
        super().__init__(meta)
        self.graph = graph
        self.store = store
        self._scratch = threading.local()
        # The kernels' arguments, fixed for the index's life: made once, not per search.
        self._store_args = store.kernel_args()
        self._search_kind = store.search_kind(meta.metric)
        self._residual = store.residual_array()
        # an array of its own: a read-only memory map would compile (and round) differently
        mean = store.mean if store.mean is not None else np.zeros(meta.dim, np.float32)
        self._mean = np.array(mean, dtype=np.float32)
        self._graph_args = (
            np.asarray(graph.layer0),
            graph.upper_nodes,
            graph.upper_levels,
            graph.upper_starts,
            np.asarray(graph.upper),
            graph.entry,
            graph.max_level,
        )

    def with_storage(self, vectors: np.ndarray, storage: Storage) -> HNSWIndex:
        """This graph over ``vectors`` (those it was built from) stored as ``storage``: to
        compare storages on one graph."""
        data, _, _ = self.prepare_data(vectors, self.metric)
        config = self.config.model_copy(update={"storage": storage})
        meta = IndexMeta(config, self.metric, self.dim, self.count)
        return HNSWIndex(meta, self.graph, VectorStore.encode(data, storage))

    def with_graph(self, graph: Graph) -> HNSWIndex:
        """This index's storage over another graph of the same vectors: to compare graphs."""
        meta = IndexMeta(self.config, self.metric, self.dim, self.count)
        return HNSWIndex(meta, graph, self.store)

    def _visited_set(self) -> tuple[np.ndarray, np.ndarray]:
        """This thread's visited tags (uint16 [n]) and tag counter, kept across searches so a
        query does not pay for clearing an array of the collection's size."""
        visited = getattr(self._scratch, "visited", None)
        if visited is None:
            visited = np.zeros(self.count, np.uint16)
            self._scratch.visited = visited
            self._scratch.tag_state = np.zeros(1, np.int64)
        return visited, self._scratch.tag_state

    @classmethod
    def build(
        cls, data: Any, meta: IndexMeta, progress: Callable[[int], None] | None = None
    ) -> HNSWIndex:
        config = cast(HNSWConfig, meta.config)
        threads = int(meta.build.get("threads", 1))
        graph = build_graph(
            data, config.m, config.ef_construction, meta.metric, threads, progress, LAYER0_ALPHA
        )
        store = VectorStore.encode(data, config.storage)
        return cls(meta, graph, store)

    def _defaults(self, k: int, params: HNSWSearchParams, cap: int | None) -> dict[str, Any]:
        return {"rerank": params.ef_search} if self.store.has_residual else {}

    def _check(self, params: HNSWSearchParams) -> None:
        if params.rerank is not None and not self.store.has_residual:
            raise ConfigError(
                f"rerank needs a storage with a residual level (lvq4x4, lvq4x8); this "
                f"index stores {self.store.storage}"
            )

    def plan_filter(self, allowed: AllowedRows, params: HNSWSearchParams) -> str:
        """The arm a filtered search takes: ``"scan"`` (score every allowed row) when they
        are few, else ``"graph"``; a ``filter_arm`` other than ``auto`` forces it."""
        if params.filter_arm != "auto":
            return params.filter_arm
        if allowed.count <= params.ef_search:  # the graph's beam could not fill
            return "scan"
        decades = max(0.0, math.log10(0.1 / max(allowed.selectivity, 1e-12)))
        threshold = FILTER_SCAN_ROWS * (1.0 + FILTER_SCAN_GROWTH * decades)
        return "scan" if allowed.count <= threshold else "graph"

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        params: HNSWSearchParams,
        threads: int,
        allowed: AllowedRows | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        mode = GRAPH
        if allowed is not None:
            mode = SCAN if self.plan_filter(allowed, params) == "scan" else FILTERED
        ids, scores = self._run(queries, k, params, threads, mode, allowed)
        if mode == FILTERED:
            assert allowed is not None
            # never under-filled: a query that gave up, or found fewer than k allowed rows
            # where k exist, is answered by the exact scan
            need = min(k, allowed.count)
            redo = np.flatnonzero((ids[:, :need] < 0).any(axis=1))
            if len(redo):
                again = self._run(queries[redo], k, params, threads, SCAN, allowed)
                ids[redo], scores[redo] = again
        return ids, scores

    def _run(
        self,
        queries: np.ndarray,
        k: int,
        params: HNSWSearchParams,
        threads: int,
        mode: int,
        allowed: AllowedRows | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        residual_bits = self.store.residual_bits
        depth = max(params.rerank or params.ef_search, k) if residual_bits else 0
        ef = max(params.ef_search, k, depth)
        kind, fdata, hdata, codes, lut = self._store_args
        search_kind = self._search_kind
        nq = queries.shape[0]
        ids = np.empty((nq, ef), np.int64)
        scores = np.empty((nq, ef), np.float32)
        # the integer kernels rank with an 8-bit query: without a residual level, the beam's
        # results are scored again on the float query so that scores and order are exact
        rescored = search_kind != kind and not residual_bits
        final_kind = kind if residual_bits or rescored else -1
        out_ids = np.empty((nq, k), np.int64) if rescored else ids
        out_scores = np.empty((nq, k), np.float32) if rescored else scores
        l2 = self.metric == "l2"
        store_args = (fdata, hdata, codes, lut, self._residual)
        status = np.zeros(nq, np.uint8)
        filtered: dict[str, Any] = {"mode": mode}
        if allowed is not None:
            filtered.update(
                allowed=allowed.mask,
                rows=allowed.rows if mode == SCAN else None,  # a pass over the mask: when read
                max_scored=max(4 * ef, int(allowed.count * FILTER_GIVE_UP)),
            )

        def run(span: tuple[int, int]) -> None:
            a, b = span
            visited, tag_state = self._visited_set()
            # fmt: off
            graph_search(
                queries[a:b], self._mean, search_kind, l2, residual_bits, final_kind,
                *store_args, *self._graph_args, ef, depth, ids[a:b], scores[a:b], out_ids[a:b],
                out_scores[a:b], visited, tag_state, status=status[a:b], **filtered,
            )
            # fmt: on

        if nq == 1 or threads == 1:
            run((0, nq))  # no thread hop for one query
        else:
            run_spans(nq, threads, run)
        if mode == FILTERED:
            out_ids[status == 1] = -1  # gave up: the caller scans these queries' rows
        return out_ids[:, :k], out_scores[:, :k]

    def _arrays(self) -> Sequence[np.ndarray]:
        return [*self.graph.arrays(), *self.store.arrays()]

    def _save_arrays(self, writer: IndexWriter) -> None:
        self.graph.save(writer)
        self.store.save(writer)

    @classmethod
    def _files(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> set[str]:
        return set(Graph.FILES) | VectorStore.files(reader, cast(HNSWConfig, config).storage)

    @classmethod
    def _load(cls, reader: IndexReader, meta: IndexMeta) -> HNSWIndex:
        config = cast(HNSWConfig, meta.config)
        graph = Graph.load(reader, meta.count, config.m)
        store = VectorStore.load(reader, config.storage, meta.dim, meta.count)
        return cls(meta, graph, store)


register(HNSWIndex)
