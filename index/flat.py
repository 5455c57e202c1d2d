"""``flat``: exact search over every stored vector (float32, float16 or LVQ-8 codes).

Scores come from blocked matrix products (BLAS) and a running top-k; query chunks run on a
thread pool, since both the product and the selection release the GIL. LVQ-8 codes enter the
product as they are (uint8 -> float32) and each row's scale and bias are applied to the
block of scores afterwards, so exact search over LVQ-8 never decodes a vector.
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
from .vecstore import VectorStore

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
    return _over_chunks(queries, threads, lambda c: _search_chunk(c, vectors, sq_norms, k))


def _over_chunks(
    queries: np.ndarray,
    threads: int,
    search_chunk: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``search_chunk`` over chunks of ``QUERY_CHUNK`` queries, on up to ``threads``
    threads (BLAS and the top-k release the GIL), and concatenate the (rows, scores)."""
    nq = queries.shape[0]
    chunks = [queries[s : s + QUERY_CHUNK] for s in range(0, nq, QUERY_CHUNK)]
    if threads <= 1 or len(chunks) == 1:
        parts = [search_chunk(c) for c in chunks]
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(chunks))) as pool:
            parts = list(pool.map(search_chunk, chunks))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _lvq8_block(records: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes as float32 [b, d], and each row's Δ and bias [b] (float32)."""
    rec = np.asarray(records)
    consts = np.ascontiguousarray(rec[:, dim : dim + 4]).view("<f2").astype(np.float32)
    return rec[:, :dim].astype(np.float32), consts[:, 0], consts[:, 1]


def lvq8_sq_norms(store: VectorStore) -> np.ndarray:
    """Squared norms of the centred reconstructions Δc + bias (for L2 over LVQ-8)."""
    assert store.codes is not None
    parts = []
    for start in range(0, store.codes.shape[0], ROW_BLOCK):
        codes, delta, low = _lvq8_block(store.codes[start : start + ROW_BLOCK], store.dim)
        recon = codes * delta[:, None] + low[:, None]
        parts.append(np.einsum("ij,ij->i", recon, recon))
    return np.concatenate(parts).astype(np.float32)


def _lvq8_chunk(
    queries: np.ndarray, store: VectorStore, sq_norms: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    assert store.codes is not None and store.mean is not None
    top = TopK(queries.shape[0], k)
    l2 = sq_norms is not None
    q = queries - store.mean if l2 else queries  # q' in <q', Δc + bias>
    qsum = q.sum(axis=1, dtype=np.float32)[:, None]
    q_sq = np.einsum("ij,ij->i", q, q)[:, None] if l2 else None
    q_mu = None if l2 else (queries @ store.mean)[:, None]
    for start in range(0, store.codes.shape[0], ROW_BLOCK):
        codes, delta, low = _lvq8_block(store.codes[start : start + ROW_BLOCK], store.dim)
        scores = q @ codes.T
        scores *= delta
        scores += qsum * low
        if sq_norms is not None:  # negated squared distance: 2<q', x'> - |x'|^2 - |q'|^2
            scores *= 2.0
            scores -= sq_norms[start : start + ROW_BLOCK]
            scores -= q_sq
        else:  # <q, x> = <q, x - μ> + <q, μ>
            scores += q_mu
        top.push(scores, start)
    return top.result()


def exact_search_lvq8(
    queries: np.ndarray,
    store: VectorStore,
    k: int,
    *,
    sq_norms: np.ndarray | None = None,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_search` over an LVQ-8 :class:`VectorStore` (L2 when ``sq_norms`` holds
    :func:`lvq8_sq_norms`); scores equal those of the decoded vectors."""
    return _over_chunks(queries, threads, lambda c: _lvq8_chunk(c, store, sq_norms, k))


class FlatIndex(Index):
    """Exact search; ``storage=f16`` halves memory at a small cost in score precision, and
    ``storage=lvq8`` quarters it (scores are those of the LVQ-8 reconstructions)."""

    kind = "flat"
    config: FlatConfig

    def __init__(
        self,
        vectors: np.ndarray | None,
        sq_norms: np.ndarray | None,
        store: VectorStore | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.vectors = vectors
        self.sq_norms = sq_norms
        self.store = store

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        config: FlatConfig,
        metric: Metric,
        progress: Callable[[int], None] | None = None,
        **common: Any,
    ) -> FlatIndex:
        if config.storage == "lvq8":
            store = VectorStore.encode(vectors, "lvq8")
            norms = lvq8_sq_norms(store) if metric == "l2" else None
            if progress is not None:
                progress(len(vectors))
            return cls(None, norms, store, config=config, metric=metric, **common)
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
        if self.store is not None:
            return exact_search_lvq8(
                queries, self.store, k, sq_norms=self.sq_norms, threads=threads
            )
        assert self.vectors is not None
        return exact_search(queries, self.vectors, k, sq_norms=self.sq_norms, threads=threads)

    def _arrays(self) -> Sequence[np.ndarray]:
        found = [self.vectors, self.sq_norms, *(self.store.arrays() if self.store else [])]
        return [a for a in found if a is not None]

    def _save_arrays(self, writer: IndexWriter) -> None:
        if self.store is not None:
            self.store.save(writer)
        else:
            assert self.vectors is not None
            writer.save_array("vectors.npy", self.vectors)
        if self.sq_norms is not None:
            writer.save_array("sq_norms.npy", self.sq_norms)

    @classmethod
    def _load(cls, reader: IndexReader, common: dict[str, Any]) -> FlatIndex:
        store, vectors = None, None
        if common["config"].storage == "lvq8":
            store = VectorStore.load(reader, "lvq8", common["dim"], common["count"])
        else:
            vectors = cls._load_vectors(reader, common)
        sq_norms = None
        if common["metric"] == "l2":
            sq_norms = reader.load_array("sq_norms.npy")
            if sq_norms.shape != (common["count"],):
                raise FormatError(f"{reader.root}: damaged index, sq_norms.npy has the wrong shape")
        return cls(vectors, sq_norms, store, **common)

    @staticmethod
    def _load_vectors(reader: IndexReader, common: dict[str, Any]) -> np.ndarray:
        vectors = reader.load_array("vectors.npy")
        want = np.float16 if common["config"].storage == "f16" else np.float32
        if vectors.shape != (common["count"], common["dim"]) or vectors.dtype != want:
            raise FormatError(f"{reader.root}: damaged index, vectors.npy has the wrong shape")
        return vectors
