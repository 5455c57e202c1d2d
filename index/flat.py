"""``flat``: exact search over every stored vector (float32, float16 or LVQ-8 codes).

Scores come from blocked matrix products (BLAS) and a running top-k; query chunks run on a
thread pool, since both the product and the selection release the GIL. LVQ-8 codes enter the
product as they are (uint8 -> float32) and each row's scale and bias are applied to the
block of scores afterwards, so exact search over LVQ-8 never decodes a vector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal, cast

import numpy as np

from .base import AllowedRows, Index, IndexMeta
from .config import IndexConfig, SearchParams
from .errors import FormatError
from .kernels.scan import FEW_QUERIES, dot_codes, dot_rows
from .metrics import Metric
from .registry import register
from .storage import IndexReader, IndexWriter
from .topk import TopK
from .vecstore import VectorStore

__all__ = ["FlatConfig", "FlatIndex", "FlatSearchParams", "exact_search"]

QUERY_CHUNK = 256
SQ_NORMS_FILE = "sq_norms.npy"
ROW_BLOCK = 16384


def _search_chunk(
    queries: np.ndarray,
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    k: int,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    top = TopK(queries.shape[0], k)
    few = queries.shape[0] <= FEW_QUERIES and vectors.dtype == np.float32
    q_sq = None if sq_norms is None else np.einsum("ij,ij->i", queries, queries)[:, None]
    for start, block, norms in _blocks(vectors, sq_norms, rows):
        block = np.asarray(block, dtype=np.float32)
        # huge finite inputs overflow to inf (or inf - inf = nan): the caller refuses them
        with np.errstate(over="ignore", invalid="ignore"):
            if few:
                scores = np.empty((queries.shape[0], block.shape[0]), np.float32)
                dot_rows(queries, np.ascontiguousarray(block), scores)
            else:
                scores = queries @ block.T
            if norms is not None and q_sq is not None:
                # negated squared distance: 2<q,x> - |x|^2 - |q|^2
                scores *= 2.0
                scores -= norms
                scores -= q_sq
        top.push(scores, start)
    return _to_rows(top.result(), rows)


def _blocks(
    array: np.ndarray, sq_norms: np.ndarray | None, rows: np.ndarray | None
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(position, block of ``array``, its squared norms) over every row, or over ``rows``
    only (gathered; positions then count within ``rows``)."""
    total = array.shape[0] if rows is None else len(rows)
    for start in range(0, total, ROW_BLOCK):
        if rows is None:
            block = array[start : start + ROW_BLOCK]
            norms = None if sq_norms is None else sq_norms[start : start + ROW_BLOCK]
        else:
            picked = rows[start : start + ROW_BLOCK]
            block = array[picked]
            norms = None if sq_norms is None else sq_norms[picked]
        yield start, block, norms


def _to_rows(
    found: tuple[np.ndarray, np.ndarray], rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions within ``rows`` back to rows (-1 stays -1)."""
    pos, scores = found
    if rows is None:
        return pos, scores
    return np.where(pos >= 0, rows[np.maximum(pos, 0)], -1), scores


def exact_search(
    queries: np.ndarray,
    vectors: np.ndarray,
    k: int,
    *,
    sq_norms: np.ndarray | None = None,
    threads: int = 1,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` float32 [nq, d] against ``vectors`` [n, d] (f32 or f16),
    or against the ``rows`` of them only (int64, ascending).

    Inner product unless ``sq_norms`` (float32 [n], squared norms of ``vectors``) is given, in
    which case the score is the negated squared L2 distance. Returns rows int64 [nq, k] and
    scores float32 [nq, k], best first.
    """
    return _over_chunks(queries, threads, lambda c: _search_chunk(c, vectors, sq_norms, k, rows))


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


def _lvq8_constants(records: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's Δ and bias [b] (float32)."""
    consts = np.ascontiguousarray(np.asarray(records)[:, dim : dim + 4]).view("<f2")
    consts = consts.astype(np.float32)
    return consts[:, 0], consts[:, 1]


def _lvq8_block(records: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes as float32 [b, d], and each row's Δ and bias [b] (float32)."""
    delta, low = _lvq8_constants(records, dim)
    return np.asarray(records)[:, :dim].astype(np.float32), delta, low


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
    queries: np.ndarray,
    store: VectorStore,
    sq_norms: np.ndarray | None,
    k: int,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    assert store.codes is not None and store.mean is not None
    top = TopK(queries.shape[0], k)
    l2 = sq_norms is not None
    q = queries - store.mean if l2 else queries  # q' in <q', Δc + bias>
    qsum = q.sum(axis=1, dtype=np.float32)[:, None]
    q_sq = np.einsum("ij,ij->i", q, q)[:, None] if l2 else None
    q_mu = None if l2 else (queries @ store.mean)[:, None]
    few = queries.shape[0] <= FEW_QUERIES
    for start, records, norms in _blocks(store.codes, sq_norms, rows):
        with np.errstate(over="ignore", invalid="ignore"):  # as in _search_chunk
            if few:  # the codes as they are, not converted to a float32 block first
                delta, low = _lvq8_constants(records, store.dim)
                scores = np.empty((q.shape[0], records.shape[0]), np.float32)
                dot_codes(
                    np.ascontiguousarray(q, np.float32),
                    np.ascontiguousarray(records),
                    store.dim,
                    scores,
                )
            else:
                codes, delta, low = _lvq8_block(records, store.dim)
                scores = q @ codes.T
            scores *= delta
            scores += qsum * low
            if norms is not None:  # negated squared distance: 2<q', x'> - |x'|^2 - |q'|^2
                scores *= 2.0
                scores -= norms
                scores -= q_sq
            else:  # <q, x> = <q, x - μ> + <q, μ>
                scores += q_mu
        top.push(scores, start)
    return _to_rows(top.result(), rows)


def exact_search_lvq8(
    queries: np.ndarray,
    store: VectorStore,
    k: int,
    *,
    sq_norms: np.ndarray | None = None,
    threads: int = 1,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_search` over an LVQ-8 :class:`VectorStore` (L2 when ``sq_norms`` holds
    :func:`lvq8_sq_norms`), or over its ``rows`` only; scores equal those of the decoded
    vectors."""
    return _over_chunks(queries, threads, lambda c: _lvq8_chunk(c, store, sq_norms, k, rows))


class FlatConfig(IndexConfig):
    """Exact search over stored vectors."""

    kind: ClassVar[str] = "flat"
    storage: Literal["f32", "f16", "lvq8"] = "f32"


class FlatSearchParams(SearchParams):
    """Exact search takes no search parameters."""


class FlatIndex(Index[FlatSearchParams]):
    """Exact search; ``storage=f16`` halves memory at a small cost in score precision, and
    ``storage=lvq8`` quarters it (scores are those of the LVQ-8 reconstructions)."""

    kind = "flat"
    config_type = FlatConfig
    params_type = FlatSearchParams
    config: FlatConfig

    def __init__(self, meta: IndexMeta, store: VectorStore, sq_norms: np.ndarray | None) -> None:
        super().__init__(meta)
        self.store = store
        self.sq_norms = sq_norms

    @classmethod
    def build(
        cls, data: Any, meta: IndexMeta, progress: Callable[[int], None] | None = None
    ) -> FlatIndex:
        config = cast(FlatConfig, meta.config)
        store = VectorStore.encode(data, config.storage)
        norms = None
        if meta.metric == "l2":
            norms = lvq8_sq_norms(store) if store.codes is not None else _sq_norms(store.floats())
        if progress is not None:
            progress(len(data))
        return cls(meta, store, norms)

    def _defaults(self, k: int, params: FlatSearchParams, cap: int | None) -> dict[str, Any]:
        return {}

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        params: FlatSearchParams,
        threads: int,
        allowed: AllowedRows | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = None if allowed is None else allowed.rows  # a filter: scan its rows only
        if self.store.codes is not None:
            return exact_search_lvq8(
                queries, self.store, k, sq_norms=self.sq_norms, threads=threads, rows=rows
            )
        vectors = self.store.floats()
        return exact_search(queries, vectors, k, sq_norms=self.sq_norms, threads=threads, rows=rows)

    def _arrays(self) -> Sequence[np.ndarray]:
        norms = [] if self.sq_norms is None else [self.sq_norms]
        return [*self.store.arrays(), *norms]

    def _save_arrays(self, writer: IndexWriter) -> None:
        self.store.save(writer)
        if self.sq_norms is not None:
            writer.save_array(SQ_NORMS_FILE, self.sq_norms)

    @classmethod
    def _files(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> set[str]:
        norms = {SQ_NORMS_FILE} if metric == "l2" else set()
        return VectorStore.files(reader, cast(FlatConfig, config).storage) | norms

    @classmethod
    def _load(cls, reader: IndexReader, meta: IndexMeta) -> FlatIndex:
        config = cast(FlatConfig, meta.config)
        store = VectorStore.load(reader, config.storage, meta.dim, meta.count)
        sq_norms = None
        if meta.metric == "l2":
            sq_norms = reader.load_array(SQ_NORMS_FILE)
            if sq_norms.shape != (meta.count,) or sq_norms.dtype != np.float32:
                raise FormatError(
                    f"{reader.root}: damaged index, {SQ_NORMS_FILE} does not hold {meta.count} "
                    "float32 norms"
                )
        return cls(meta, store, sq_norms)


def _sq_norms(vectors: np.ndarray) -> np.ndarray:
    """Squared norms of float rows (float16 ones are widened block by block)."""
    parts = []
    for start in range(0, vectors.shape[0], ROW_BLOCK):
        block = np.asarray(vectors[start : start + ROW_BLOCK], dtype=np.float32)
        parts.append(np.einsum("ij,ij->i", block, block))
    return np.concatenate(parts).astype(np.float32)


register(FlatIndex)
