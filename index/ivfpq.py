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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import Field, field_validator

from .base import AllowedRows, Index, IndexMeta
from .config import IndexConfig, SearchParams, candidate_count
from .errors import ConfigError, FormatError
from .ivfpq_train import SEED, auto_m, auto_nlist, factory_string, resolve, train_faiss
from .kernels.rescore import rescore
from .metrics import Metric
from .registry import register
from .storage import IndexReader, IndexWriter
from .threads import faiss_threads, run_spans
from .vecstore import VectorStore

__all__ = [
    "IVFPQConfig",
    "IVFPQIndex",
    "IVFPQSearchParams",
    "auto_m",
    "auto_nlist",
    "factory_string",
]

FAISS_FILE = "ivfpq.faiss"
DEFAULT_RERANK_FACTOR = 10


class IVFPQConfig(IndexConfig):
    """An inverted file of ``nlist`` lists whose vectors are product-quantized into ``m``
    codes of ``nbits`` bits (4 = faiss's fast-scan), optionally after an OPQ rotation, with
    re-ranking of the best candidates on LVQ-8 codes or float32 vectors.

    ``nlist`` and ``m`` may be ``auto``; the build replaces them with the values it chose
    (``auto`` nlist is about 2·√n rounded to a power of two; ``auto`` m gives 4 dimensions
    per sub-quantizer), so a saved index always records numbers.
    """

    kind: ClassVar[str] = "ivfpq"
    nlist: int | Literal["auto"] = Field(default="auto", description="Number of lists.")
    m: int | Literal["auto"] = Field(default="auto", description="Sub-quantizers per vector.")
    nbits: int = Field(default=4, description="Bits per code: 4 (fast-scan) or 8.")
    opq: bool = False
    rerank: Literal["none", "lvq8", "f32"] = "lvq8"

    @field_validator("nlist", "m")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 1 << 20:
            raise ValueError("must be between 1 and 1048576, or auto")
        return value

    @field_validator("nbits")
    @classmethod
    def _four_or_eight(cls, value: int) -> int:
        if value not in (4, 8):
            raise ValueError("must be 4 or 8")
        return value


class IVFPQSearchParams(SearchParams):
    nprobe: int | None = Field(
        default=None, ge=1, le=1 << 20, description="Lists scanned per query (default nlist/8)."
    )
    rerank_k: int | None = candidate_count(
        le=16384,
        description="Candidates re-scored exactly (default 10·k; needs rerank=lvq8|f32).",
    )


class IVFPQIndex(Index[IVFPQSearchParams]):
    kind = "ivfpq"
    config_type = IVFPQConfig
    params_type = IVFPQSearchParams
    config: IVFPQConfig

    def __init__(
        self, meta: IndexMeta, faiss_index: Any, store: VectorStore | None, faiss_bytes: int
    ) -> None:
        super().__init__(meta)
        self.faiss = faiss_index
        self.store = store
        self.faiss_bytes = faiss_bytes

    @classmethod
    def build(
        cls, data: Any, meta: IndexMeta, progress: Callable[[int], None] | None = None
    ) -> IVFPQIndex:
        import faiss

        config = cast(IVFPQConfig, meta.config)
        nlist, m, n_train = resolve(config.nlist, config.m, config.nbits, *data.shape)
        resolved = config.model_copy(update={"nlist": nlist, "m": m})
        threads = int(meta.build.get("threads", 1))
        layout = (nlist, m, config.nbits, config.opq)
        index, chosen = train_faiss(data, layout, meta.metric, n_train, threads, progress)
        store = None if resolved.rerank == "none" else VectorStore.encode(data, resolved.rerank)
        info = {"train_vectors": n_train, "seed": SEED, **chosen}
        size = len(faiss.serialize_index(index))
        return cls(meta.but(config=resolved, build=info), index, store, size)

    # -- search -----------------------------------------------------------------------------
    def _defaults(self, k: int, params: IVFPQSearchParams, cap: int | None) -> dict[str, Any]:
        defaults: dict[str, Any] = {"nprobe": max(1, int(self.config.nlist) // 8)}
        if self.store is not None:
            defaults["rerank_k"] = DEFAULT_RERANK_FACTOR * k
        return defaults

    def _check(self, params: IVFPQSearchParams) -> None:
        p = params
        nlist = int(self.config.nlist)
        if p.nprobe is not None and p.nprobe > nlist:
            raise ConfigError(
                f"nprobe={p.nprobe} is larger than nlist={nlist} (the number of lists)"
            )
        if p.rerank_k is not None and self.store is None:
            raise ConfigError(
                "rerank_k needs an index built with rerank=lvq8 or rerank=f32; "
                "this one has rerank=none"
            )

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        params: IVFPQSearchParams,
        threads: int,
        allowed: AllowedRows | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # resolved: nprobe is always set, rerank_k whenever there is a re-rank store
        nprobe = int(cast(int, params.nprobe))
        depth = max(int(cast(int, params.rerank_k)), k) if self.store is not None else k
        if allowed is None:
            return self._run(queries, k, depth, nprobe, None, threads)
        import faiss

        # faiss skips the codes of rows the selector refuses as it scans each list
        bitmap = np.packbits(allowed.mask.view(np.bool_), bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # n: bytes
        ids, scores = self._run(queries, k, depth, nprobe, selector, threads)
        # never under-filled: a query whose probed lists held fewer than k allowed rows
        # (where k exist) probes every list
        need = min(k, allowed.count)
        redo = np.flatnonzero((ids[:, :need] < 0).any(axis=1))
        if len(redo) and nprobe < int(self.config.nlist):
            everywhere = int(self.config.nlist)
            again = self._run(queries[redo], k, depth, everywhere, selector, threads)
            ids[redo], scores[redo] = again
        del bitmap  # the selector points into it: kept alive until here
        return ids, scores

    def _run(
        self,
        queries: np.ndarray,
        k: int,
        depth: int,
        nprobe: int,
        selector: Any,
        threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        nq = queries.shape[0]
        cand = np.empty((nq, depth), np.int64)
        dist = np.empty((nq, depth), np.float32)
        if selector is None:
            search_params = faiss.SearchParametersIVF(nprobe=nprobe)
        else:
            search_params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
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
            return cand[:, :k], scores[:, :k]

        kind, fdata, hdata, codes, lut = store.kernel_args()
        out_ids = np.empty((nq, k), np.int64)
        out_scores = np.empty((nq, k), np.float32)

        def run(span: tuple[int, int]) -> None:
            a, b = span
            prepared = store.prepare(queries[a:b], self.metric)
            rescore(
                prepared.q,
                prepared.q8,
                prepared.qscale,
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
    def _files(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> set[str]:
        rerank = cast(IVFPQConfig, config).rerank
        return {FAISS_FILE} | (set() if rerank == "none" else VectorStore.files(reader, rerank))

    @classmethod
    def _load(cls, reader: IndexReader, meta: IndexMeta) -> IVFPQIndex:
        import faiss

        config = cast(IVFPQConfig, meta.config)
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
        if index.d != meta.dim or index.ntotal != meta.count or ivf.nlist != config.nlist:
            raise FormatError(
                f"{path}: damaged index, faiss holds {index.ntotal} x {index.d} in {ivf.nlist} "
                f"lists, the manifest says {meta.count} x {meta.dim} in {config.nlist}"
            )
        _check_layout(path, index, config, meta.metric)
        store = None
        if config.rerank != "none":
            store = VectorStore.load(reader, config.rerank, meta.dim, meta.count)
        return cls(meta, index, store, reader.files[FAISS_FILE]["bytes"])


def _check_layout(path: Path, index: Any, config: IVFPQConfig, metric: Metric) -> None:
    """The codes, rotation and metric of a loaded faiss index are those of ``config`` and
    ``metric`` (a manifest edited to say otherwise would mis-size or mis-score searches)."""
    import faiss

    pq = getattr(faiss.downcast_index(faiss.extract_index_ivf(index)), "pq", None)
    opq = isinstance(index, faiss.IndexPreTransform)
    want = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    found = (pq.M, pq.nbits, opq, index.metric_type == want) if pq is not None else None
    if found != (config.m, config.nbits, config.opq, True):
        codes = "no PQ codes" if pq is None else f"m={pq.M}, nbits={pq.nbits}, opq={opq}"
        kind = {faiss.METRIC_L2: "l2", faiss.METRIC_INNER_PRODUCT: "inner product"}
        scored = kind.get(index.metric_type, f"metric type {index.metric_type}")
        raise FormatError(
            f"{path}: damaged index, faiss holds {codes} scored by {scored}; the manifest "
            f"says m={config.m}, nbits={config.nbits}, opq={config.opq}, metric {metric}"
        )


register(IVFPQIndex)
