"""``flat``: exact search over every stored vector.

Scores come from blocked matrix products (BLAS) and a running top-k; query chunks run on a
thread pool, since both the product and the selection release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .base import Index
from .config import FlatConfig, SearchParams
from .errors import FormatError
from .metrics import Metric
from .storage import IndexReader, IndexWriter
from .topk import TopK

__all__ = ["FlatIndex", "exact_search"]

QUERY_CHUNK = 256
ROW_BLOCK = 16384


def _search_chunk(
    queries: np.ndarray, vectors: np.ndarray, sq_norms: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    top = TopK(queries.shape[0], k)
    q_sq = None if sq_norms is None else np.einsum("ij,ij->i", queries, queries)[:, None]
    for start in range(0, vectors.shape[0], ROW_BLOCK):
        block = np.asarray(vectors[start : start + ROW_BLOCK], dtype=np.float32)
        scores = queries @ block.T
        if sq_norms is not None:
            # negated squared distance: 2<q,x> - |x|^2 - |q|^2
            scores *= 2.0
            scores -= sq_norms[start : start + ROW_BLOCK]
            scores -= q_sq
        top.push(scores, start)
    return top.result()


def exact_search(
    queries: np.ndarray,
    vectors: np.ndarray,
    k: int,
    *,
    sq_norms: np.ndarray | None = None,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` float32 [nq, d] against ``vectors`` [n, d] (f32 or f16).

    Inner product unless ``sq_norms`` (float32 [n], squared norms of ``vectors``) is given, in
    which case the score is the negated squared L2 distance. Returns rows int64 [nq, k] and
    scores float32 [nq, k], best first.
    """
    nq = queries.shape[0]
    chunks = [queries[s : s + QUERY_CHUNK] for s in range(0, nq, QUERY_CHUNK)]
    if threads <= 1 or len(chunks) == 1:
        parts = [_search_chunk(c, vectors, sq_norms, k) for c in chunks]
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(chunks))) as pool:
            parts = list(pool.map(lambda c: _search_chunk(c, vectors, sq_norms, k), chunks))
    rows = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    return rows, scores


class FlatIndex(Index):
    """Exact search; ``storage=f16`` halves memory at a small cost in score precision."""

    kind = "flat"
    config: FlatConfig

    def __init__(self, vectors: np.ndarray, sq_norms: np.ndarray | None, **common: Any) -> None:
        super().__init__(**common)
        self.vectors = vectors
        self.sq_norms = sq_norms

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        config: FlatConfig,
        metric: Metric,
        progress: Callable[[int], None] | None = None,
        **common: Any,
    ) -> FlatIndex:
        stored = vectors.astype(np.float16) if config.storage == "f16" else vectors
        sq_norms = None
        if metric == "l2":
            as_f32 = stored.astype(np.float32, copy=False)
            sq_norms = np.einsum("ij,ij->i", as_f32, as_f32).astype(np.float32)
        if progress is not None:
            progress(len(vectors))
        return cls(stored, sq_norms, config=config, metric=metric, **common)

    def _search(
        self, queries: np.ndarray, k: int, params: SearchParams, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(queries, self.vectors, k, sq_norms=self.sq_norms, threads=threads)

    def _arrays(self) -> Sequence[np.ndarray]:
        return [a for a in (self.vectors, self.sq_norms) if a is not None]

    def _save_arrays(self, writer: IndexWriter) -> None:
        writer.save_array("vectors.npy", self.vectors)
        if self.sq_norms is not None:
            writer.save_array("sq_norms.npy", self.sq_norms)

    @classmethod
    def _load(cls, reader: IndexReader, common: dict[str, Any]) -> FlatIndex:
        vectors = reader.load_array("vectors.npy")
        want = np.float16 if common["config"].storage == "f16" else np.float32
        if vectors.shape != (common["count"], common["dim"]) or vectors.dtype != want:
            raise FormatError(f"{reader.root}: damaged index, vectors.npy has the wrong shape")
        sq_norms = None
        if common["metric"] == "l2":
            sq_norms = reader.load_array("sq_norms.npy")
            if sq_norms.shape != (common["count"],):
                raise FormatError(f"{reader.root}: damaged index, sq_norms.npy has the wrong shape")
        return cls(vectors, sq_norms, **common)
