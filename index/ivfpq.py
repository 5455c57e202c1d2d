"""``ivfpq``: an inverted file with product-quantized codes (faiss), re-ranked by glint.

faiss does what it is best at: k-means for the ``nlist`` lists, PQ training, and the scan of
the lists (4-bit codes use its fast-scan kernels, which keep the lookup tables in SIMD
registers). glint owns the rest:

- **Training sample:** a seeded random sample of at most ``256 · nlist`` vectors (faiss's
  k-means would not use more), the same for every build of the same data.
- **Validation:** ``m`` must divide the dimension (no padding, no silent rotation; the error
  lists the divisors nearby); ``nlist`` may not exceed the training sample (the error suggests
  a value); 8-bit codes need 256 training vectors.
- **Re-ranking:** the coarse search returns ``rerank_k`` candidates per query, re-scored
  exactly on LVQ-8 codes (default; 4 bytes per vector above the dimension) or float32 vectors
  by :mod:`glint.index.kernels.rescore`. The re-rank store is memory-mapped and touched only
  at the candidates, so it can stay on disk when memory is short.
- **Threads:** a search uses the threads it is given: faiss scans the whole batch with that
  many OpenMP threads (set for the call, in the calling thread only), then the re-ranking
  runs in spans on as many of glint's threads (see :mod:`glint.index.threads`).
- **Format:** the faiss index is a file inside the index directory (``ivfpq.faiss``),
  checksummed by the manifest like every array. 8-bit lists are memory-mapped on load; faiss
  copies fast-scan lists into its own block layout, so those are read into memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from .base import Index
from .config import IVFPQConfig, IVFPQSearchParams, SearchParams
from .errors import ConfigError, FormatError
from .kernels.rescore import rescore
from .metrics import Metric
from .storage import IndexReader, IndexWriter
from .threads import faiss_threads, run_spans
from .vecstore import VectorStore

__all__ = ["IVFPQIndex", "auto_m", "auto_nlist", "factory_string"]

log = logging.getLogger(__name__)

FAISS_FILE = "ivfpq.faiss"
SEED = 20261122
TRAIN_PER_LIST = 256  # faiss's k-means samples at most this many vectors per centroid
WELL_TRAINED = 39  # below this many vectors per list, k-means quality suffers
DEFAULT_RERANK_FACTOR = 10
_ADD_CHUNK = 65536


def auto_nlist(n: int) -> int:
    """About 2·√n lists, a power of two, with at least 39 training vectors per list."""
    target = 2 ** round(math.log2(max(1.0, 2.0 * math.sqrt(n))))
    return int(max(1, min(target, n // WELL_TRAINED)))


def _divisors(dim: int) -> list[int]:
    return [m for m in range(1, dim + 1) if dim % m == 0]


def auto_m(dim: int) -> int:
    """The most sub-quantizers that keep at least 4 dimensions each (m divides ``dim``)."""
    fits = [m for m in _divisors(dim) if dim // m >= 4]
    return fits[-1] if fits else 1


def check_m(m: int, dim: int) -> None:
    if dim % m == 0:
        return
    divisors = _divisors(dim)
    below = [d for d in divisors if d < m][-2:]
    above = [d for d in divisors if d > m][:2]
    raise ConfigError(
        f"ivfpq: m={m} does not divide the dimension {dim} (each sub-quantizer codes dim/m "
        f"dimensions); use one of {', '.join(map(str, below + above))}"
    )


def factory_string(nlist: int, m: int, nbits: int, opq: bool, residual: bool = False) -> str:
    """The faiss index_factory string of a resolved config (``r``: codes of residuals; for
    8-bit codes faiss encodes residuals unless the index is told otherwise, and ``np`` skips
    the polysemous training that only a Hamming-filtered search would use, 7x the build)."""
    pq = f"PQ{m}x4fs{'r' if residual else ''}" if nbits == 4 else f"PQ{m}x8np"
    return f"{f'OPQ{m},' if opq else ''}IVF{nlist},{pq}"


def residual_share(sample: np.ndarray, nlist: int) -> float:
    """The share of the sample's variance left after subtracting each vector's nearest of
    ``nlist`` k-means centroids (a quick k-means on at most 64 vectors per list).

    PQ codes either the vectors or their residuals from the list centroid. Residuals win when
    the lists explain most of the variance (strongly clustered data, like the tests') and
    lose a little when they explain less (MiniLM embeddings: ``glint info`` shows the share
    each build measured), so the build codes residuals below 0.5.
    """
    import faiss

    n, dim = sample.shape
    rng = np.random.default_rng(SEED + 1)
    take = min(n, 64 * nlist)
    sub = np.ascontiguousarray(sample[rng.choice(n, take, replace=False)] if take < n else sample)
    kmeans = faiss.Kmeans(
        dim, nlist, niter=10, seed=SEED, min_points_per_centroid=1, max_points_per_centroid=64
    )
    kmeans.train(sub)
    dist, _ = kmeans.index.search(sub, 1)
    total = float(((sub - sub.mean(axis=0)) ** 2).sum(axis=1).mean())
    return float(dist.mean()) / total if total > 0 else 1.0


def resolve(config: IVFPQConfig, n: int, dim: int) -> tuple[IVFPQConfig, int]:
    """Replace ``auto`` values and validate against the data; returns the config and the
    training sample size."""
    nlist = auto_nlist(n) if config.nlist == "auto" else int(config.nlist)
    m = auto_m(dim) if config.m == "auto" else int(config.m)
    check_m(m, dim)
    n_train = min(n, TRAIN_PER_LIST * nlist)
    if nlist > n_train:
        raise ConfigError(
            f"ivfpq: nlist={nlist} is larger than the training sample ({n_train} vectors); "
            f"use nlist={auto_nlist(n)} (or nlist=auto)"
        )
    if n_train < 1 << config.nbits:
        raise ConfigError(
            f"ivfpq: nbits={config.nbits} trains {1 << config.nbits} centroids per "
            f"sub-quantizer and needs at least that many vectors; there are {n_train}"
        )
    if n_train < WELL_TRAINED * nlist:
        log.warning(
            "ivfpq: %d training vectors for %d lists (under %d per list); consider nlist=%d",
            n_train,
            nlist,
            WELL_TRAINED,
            auto_nlist(n),
        )
    return config.model_copy(update={"nlist": nlist, "m": m}), n_train


def _train_quietly(index: Any, sample: np.ndarray, m: int, nbits: int) -> None:
    """Train without faiss printing a warning per k-means run on small samples (glint logs
    its own), and fit an OPQ rotation for the code width actually used."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    ivf.cp.min_points_per_centroid = 1
    faiss.downcast_index(ivf).pq.cp.min_points_per_centroid = 1
    if not isinstance(index, faiss.IndexPreTransform):
        index.train(sample)
        return
    opq = faiss.downcast_VectorTransform(index.chain.at(0))
    pq = faiss.ProductQuantizer(sample.shape[1], m, nbits)
    pq.cp.min_points_per_centroid = 1
    opq.pq = pq  # borrowed by the OPQ matrix during training only
    try:
        index.train(sample)
    finally:
        opq.pq = None  # no pointer to ``pq`` may outlive it


def train_faiss(
    x: np.ndarray,
    config: IVFPQConfig,
    metric: Metric,
    n_train: int,
    threads: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train and fill a faiss index for a resolved ``config``; returns it and what the build
    chose (the factory string, and whether codes are of residuals)."""
    import faiss

    n, dim = x.shape
    m, nlist = int(config.m), int(config.nlist)
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    rng = np.random.default_rng(SEED)
    rows = np.sort(rng.choice(n, n_train, replace=False)) if n_train < n else slice(None)
    sample = np.ascontiguousarray(x[rows], dtype=np.float32)
    with faiss_threads(threads):
        share = residual_share(sample, nlist)
        residual = share < 0.5
        text = factory_string(nlist, m, config.nbits, config.opq, residual)
        index = faiss.index_factory(dim, text, faiss_metric)
        faiss.extract_index_ivf(index).by_residual = residual
        log.info("ivfpq: training %s on %d vectors (residual share %.2f)", text, n_train, share)
        _train_quietly(index, sample, m, config.nbits)
        for start in range(0, n, _ADD_CHUNK):
            index.add(np.ascontiguousarray(x[start : start + _ADD_CHUNK], dtype=np.float32))
            if progress is not None:
                progress(min(_ADD_CHUNK, n - start))
    info = {"faiss": text, "residual": residual, "residual_share": round(share, 3)}
    return index, info


class IVFPQIndex(Index):
    kind = "ivfpq"
    config: IVFPQConfig

    def __init__(
        self, faiss_index: Any, store: VectorStore | None, faiss_bytes: int, **common: Any
    ) -> None:
        super().__init__(**common)
        self.faiss = faiss_index
        self.store = store
        self.faiss_bytes = faiss_bytes

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        config: IVFPQConfig,
        metric: Metric,
        progress: Callable[[int], None] | None = None,
        **common: Any,
    ) -> IVFPQIndex:
        import faiss

        resolved, n_train = resolve(config, vectors.shape[0], vectors.shape[1])
        threads = int(common.get("build", {}).get("threads", 1))
        index, chosen = train_faiss(vectors, resolved, metric, n_train, threads, progress)
        store = None if resolved.rerank == "none" else VectorStore.encode(vectors, resolved.rerank)
        common["build"] = {
            **common.get("build", {}),
            "train_vectors": n_train,
            "seed": SEED,
            **chosen,
        }
        size = len(faiss.serialize_index(index))
        return cls(index, store, size, config=resolved, metric=metric, **common)

    # -- search -----------------------------------------------------------------------------
    def _nprobe(self, params: IVFPQSearchParams) -> int:
        nlist = int(self.config.nlist)
        if params.nprobe is None:
            return max(1, nlist // 8)
        if params.nprobe > nlist:
            raise ConfigError(
                f"nprobe={params.nprobe} is larger than nlist={nlist} (the number of lists)"
            )
        return params.nprobe

    def default_candidates(self, k: int) -> dict[str, int]:
        return {"rerank_k": DEFAULT_RERANK_FACTOR * k} if self.store is not None else {}

    def _search(
        self, queries: np.ndarray, k: int, params: SearchParams, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        params = cast(IVFPQSearchParams, params)
        if params.rerank_k is not None and self.store is None:
            raise ConfigError(
                "rerank_k needs an index built with rerank=lvq8 or rerank=f32; "
                "this one has rerank=none"
            )
        nprobe = self._nprobe(params)
        depth = (
            max(params.rerank_k or DEFAULT_RERANK_FACTOR * k, k) if self.store is not None else k
        )
        nq = queries.shape[0]
        cand = np.empty((nq, depth), np.int64)
        dist = np.empty((nq, depth), np.float32)
        search_params = faiss.SearchParametersIVF(nprobe=nprobe)
        l2 = self.metric == "l2"

        # One faiss call over the whole batch, on exactly ``threads`` OpenMP threads: its
        # fast-scan groups the queries that probe the same list and reads each list once for
        # all of them, which splitting the batch across calls would undo.
        with faiss_threads(threads):
            self.faiss.search(queries, depth, params=search_params, D=dist, I=cand)
        store = self.store
        if store is None:
            scores = -dist if l2 else dist
            scores[cand < 0] = -np.inf
            return cand, scores

        kind, fdata, hdata, codes, lut = store.kernel_args()
        out_ids = np.empty((nq, k), np.int64)
        out_scores = np.empty((nq, k), np.float32)

        def run(span: tuple[int, int]) -> None:
            a, b = span
            prepared = store.prepare(queries[a:b], self.metric)
            rescore(
                prepared.q,
                prepared.qsum,
                prepared.qmu,
                kind,
                l2,
                fdata,
                hdata,
                codes,
                lut,
                cand[a:b],
                out_ids[a:b],
                out_scores[a:b],
            )

        run_spans(nq, threads, run)
        return out_ids, out_scores

    # -- accounting and persistence ---------------------------------------------------------
    @property
    def memory_bytes(self) -> int:
        return super().memory_bytes + self.faiss_bytes

    def stats(self) -> dict[str, Any]:
        import faiss

        out = super().stats()
        n = max(1, self.count)
        rerank = sum(a.nbytes for a in self.store.arrays()) if self.store is not None else 0
        out["ivfpq"] = {
            "faiss": self.build_info.get("faiss"),
            "residual": bool(faiss.extract_index_ivf(self.faiss).by_residual),
            "code_bytes_per_vector": int(self.config.m) * self.config.nbits // 8,
            "faiss_bytes": self.faiss_bytes,
            "rerank_bytes": rerank,
            "bytes_per_vector": round(self.memory_bytes / n, 1),
        }
        return out

    def _arrays(self) -> Sequence[np.ndarray]:
        return self.store.arrays() if self.store is not None else []

    def _save_arrays(self, writer: IndexWriter) -> None:
        import faiss

        faiss.write_index(self.faiss, str(writer.path(FAISS_FILE)))
        if self.store is not None:
            self.store.save(writer)

    @classmethod
    def _load(cls, reader: IndexReader, common: dict[str, Any]) -> IVFPQIndex:
        import faiss

        config: IVFPQConfig = common["config"]
        path = reader.path(FAISS_FILE)
        if config.nlist == "auto" or config.m == "auto":
            raise FormatError(f"{reader.root}: damaged manifest, ivfpq config is not resolved")
        # 8-bit lists (ArrayInvertedLists) can be memory-mapped; fast-scan lists cannot.
        flags = faiss.IO_FLAG_MMAP_IFC if config.nbits == 8 else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise FormatError(f"{path}: damaged faiss index ({first})") from None
        ivf = faiss.extract_index_ivf(index)
        if index.d != common["dim"] or index.ntotal != common["count"] or ivf.nlist != config.nlist:
            raise FormatError(
                f"{path}: damaged index, faiss holds {index.ntotal} x {index.d} in {ivf.nlist} "
                f"lists, the manifest says {common['count']} x {common['dim']} in {config.nlist}"
            )
        store = None
        if config.rerank != "none":
            store = VectorStore.load(reader, config.rerank, common["dim"], common["count"])
        return cls(index, store, reader.files[FAISS_FILE]["bytes"], **common)
