"""The ``muvera`` kind: multi-vector retrieval through fixed dimensional encodings.

Build: encode every document's whole token set into an FDE (:mod:`glint.index.fde`), index
the FDEs with any single-vector kind (``inner``, inner product), and keep the tokens for
re-ranking, (optionally) pooled (float32, float16 or LVQ-8, memory-mapped once saved).
Search: encode each query's tokens into a query FDE, take the inner index's best
``candidates`` documents, and re-rank them by exact Chamfer/MaxSim on the stored tokens.

On disk everything lives in one index directory: the FDE matrices (``fde_*.npy``), the token
store (``tokens.*``) with ``token_offsets.npy``, and the inner index's files under the prefix
``inner.``; one manifest checksums them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from .base import Index
from .config import (
    IndexConfig,
    MuveraConfig,
    MuveraSearchParams,
    SearchParams,
    parse_search_params,
)
from .errors import ConfigError, FormatError
from .fde import FDEEncoder, FDEParams
from .metrics import Metric
from .multivec import TokenSets, as_token_sets, pool_tokens, rerank_chamfer
from .storage import IndexReader, IndexWriter
from .vecstore import VectorStore

__all__ = ["MuveraIndex"]

OFFSETS_FILE = "token_offsets.npy"
_FDE_FILES = {
    "hyperplanes": "fde_hyperplanes.npy",
    "projection": "fde_projection.npy",
    "sketch_buckets": "fde_sketch_buckets.npy",
    "sketch_signs": "fde_sketch_signs.npy",
}
TOKENS_PREFIX = "tokens."
INNER_PREFIX = "inner."
DEFAULT_CANDIDATE_FACTOR = 10
# At least this many candidates by default: about recall@10 = 0.90 against exact Chamfer on
# multivec-minilm (docs/benchmarks.md); fewer trade recall for speed, per query.
DEFAULT_MIN_CANDIDATES = 1000


def default_candidates(k: int) -> int:
    """Documents re-ranked per query when ``candidates`` is not given: max(10·k, 1000)."""
    return max(DEFAULT_CANDIDATE_FACTOR * k, DEFAULT_MIN_CANDIDATES)


class _PrefixedWriter:
    """A view of an :class:`IndexWriter` that puts every file name behind a prefix."""

    def __init__(self, writer: IndexWriter, prefix: str) -> None:
        self.writer, self.prefix = writer, prefix

    def path(self, name: str) -> Path:
        return self.writer.path(self.prefix + name)

    def save_array(self, name: str, array: np.ndarray) -> None:
        self.writer.save_array(self.prefix + name, array)


class _PrefixedReader:
    """A view of an :class:`IndexReader` over the files behind a prefix."""

    def __init__(self, reader: IndexReader, prefix: str) -> None:
        self.reader, self.prefix = reader, prefix
        self.root = reader.root
        self.manifest = reader.manifest
        self.files = {
            name[len(prefix) :]: entry
            for name, entry in reader.files.items()
            if name.startswith(prefix)
        }

    @property
    def disk_bytes(self) -> int:
        return sum(int(e["bytes"]) for e in self.files.values())

    def has(self, name: str) -> bool:
        return name in self.files

    def path(self, name: str) -> Path:
        return self.reader.path(self.prefix + name)

    def load_array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        return self.reader.load_array(self.prefix + name, mmap=mmap)


def fde_params(config: MuveraConfig, dim: int) -> FDEParams:
    """The encoder parameters of a ``muvera`` config over tokens of ``dim`` dimensions."""
    return FDEParams(
        dim=dim,
        k_sim=config.k_sim,
        dim_proj=config.dim_proj,
        r_reps=config.r_reps,
        final_dim=config.final_dim,
        seed=config.seed,
    )


def _inner_class(kind: str) -> type[Index]:
    from .api import _INDEX_CLASSES

    return cast(type[Index], _INDEX_CLASSES[kind])


class MuveraIndex(Index):
    kind = "muvera"
    multivector = True
    config: MuveraConfig

    def __init__(
        self,
        encoder: FDEEncoder,
        inner: Index,
        tokens: VectorStore,
        token_offsets: np.ndarray,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.encoder = encoder
        self.inner = inner
        self.tokens = tokens
        self.token_offsets = token_offsets

    # -- build ------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        docs: TokenSets,
        config: MuveraConfig,
        metric: Metric,
        progress: Callable[[int], None] | None = None,
        **common: Any,
    ) -> MuveraIndex:
        from .api import build_index

        if metric == "l2":
            raise ConfigError(
                "muvera scores by Chamfer similarity over inner products; use metric ip or cos"
            )
        threads = int(common.get("build", {}).get("threads", 1))
        timings: dict[str, float] = {}
        started = time.perf_counter()
        stored = pool_tokens(docs, config.pool_factor, threads=threads)
        timings["pool_seconds"] = time.perf_counter() - started
        params = fde_params(config, docs.dim)
        encoder = FDEEncoder(params)
        started = time.perf_counter()
        # The FDEs come from every input token, pooled or not: the FDE has the same size
        # either way, and the unpooled one finds candidates closer to the true Chamfer order.
        fdes = encoder.encode_documents(docs.tokens, docs.offsets, threads=threads)
        timings["encode_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        inner = build_index(fdes, config.inner, "ip", threads=threads, progress=progress)
        timings["inner_seconds"] = time.perf_counter() - started
        del fdes
        store = VectorStore.encode(stored.tokens, config.tokens)
        encode_s = max(timings["encode_seconds"], 1e-9)
        common["build"] = {
            **common.get("build", {}),
            "fde_dim": params.out_dim,
            "input_tokens": int(docs.offsets[-1]),
            "stored_tokens": int(stored.offsets[-1]),
            "documents_per_second": round(docs.count / encode_s, 1),
            **{key: round(value, 3) for key, value in timings.items()},
            "inner": inner.build_info,
        }
        resolved = config.model_copy(update={"inner": inner.config})
        return cls(encoder, inner, store, stored.offsets, config=resolved, metric=metric, **common)

    # -- search -----------------------------------------------------------------------------
    def _parse_params(self, params: Mapping[str, Any]) -> SearchParams:
        return parse_search_params(self.kind, params, inner=self.inner.kind)

    def prepare_queries(self, queries: Any) -> TokenSets:  # type: ignore[override]
        """Query token sets (one [t, dim] matrix, a list of them, or tokens with offsets)."""
        sets = as_token_sets(queries, what="query tokens", dim=self.dim)
        return sets.normalized() if self.metric == "cos" else sets

    def encode_queries(self, queries: Any, *, threads: int = 1) -> np.ndarray:
        """Query FDEs, float32 [nq, fde_dim]."""
        sets = self.prepare_queries(queries)
        return self.encoder.encode_queries(sets.tokens, sets.offsets, threads=threads)

    def _search(
        self, queries: Any, k: int, params: SearchParams, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        sets = cast(TokenSets, queries)
        p = cast(MuveraSearchParams, params)
        fdes = self.encoder.encode_queries(sets.tokens, sets.offsets, threads=threads)
        cand, _ = self.inner._search(fdes, self._depth(k, p.candidates), p.inner, threads)
        return self.rerank(sets, cand, k, threads=threads)

    def default_candidates(self, k: int) -> dict[str, int]:
        return {"candidates": default_candidates(k)}

    def capped_defaults(self, k: int, params: Mapping[str, Any], cap: int) -> dict[str, int]:
        """``candidates`` as :meth:`Index.capped_defaults` has it; then the inner index's
        defaults for the depth this search asks of it (``candidates`` as given or lowered)."""
        out = super().capped_defaults(k, params, cap)
        given = out.get("candidates", params.get("candidates"))
        try:  # as the parser reads it: "300" and 300.0 count too
            depth = self._depth(k, None if given is None else int(float(given)))
        except (TypeError, ValueError, OverflowError):
            return out  # not a number: the search refuses it with its own message
        inner = {key: value for key, value in params.items() if key != "candidates"}
        out.update(self.inner.capped_defaults(depth, inner, cap))
        return out

    def _depth(self, k: int, candidates: int | None) -> int:
        """Documents asked of the inner index: ``candidates`` (or the default), at least
        ``k``, at most every document."""
        return min(max(k, candidates or default_candidates(k)), self.count)

    def rerank(
        self, sets: TokenSets, cand: np.ndarray, k: int, *, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact Chamfer re-ranking of candidate rows ``cand`` int64 [nq, c] (-1 = none)."""
        return rerank_chamfer(self.tokens, self.token_offsets, sets, cand, k, threads=threads)

    def warm(self) -> None:
        self.search(np.full((2, self.dim), 1e-3, np.float32), k=1, threads=1)

    # -- accounting and persistence ---------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out = super().stats()
        n = max(1, self.count)
        token_bytes = sum(a.nbytes for a in self.tokens.arrays()) + self.token_offsets.nbytes
        inner_bytes = self.inner.memory_bytes
        out["muvera"] = {
            "fde_dim": self.encoder.params.out_dim,
            "inner": self.inner.spec,
            "stored_tokens": int(self.token_offsets[-1]),
            "tokens_per_document": round(int(self.token_offsets[-1]) / n, 2),
            "token_bytes": token_bytes,
            "fde_index_bytes": inner_bytes,
            "token_bytes_per_document": round(token_bytes / n, 1),
            "fde_bytes_per_document": round(inner_bytes / n, 1),
            "bytes_per_document": round(self.memory_bytes / n, 1),
        }
        return out

    @property
    def memory_bytes(self) -> int:
        return super().memory_bytes + self.inner.memory_bytes

    def _arrays(self) -> Sequence[np.ndarray]:
        return [*self.tokens.arrays(), self.token_offsets, *self.encoder.arrays().values()]

    def _save_arrays(self, writer: IndexWriter) -> None:
        for name, array in self.encoder.arrays().items():
            writer.save_array(_FDE_FILES[name], array)
        writer.save_array(OFFSETS_FILE, self.token_offsets)
        self.tokens.save(_PrefixedWriter(writer, TOKENS_PREFIX))  # type: ignore[arg-type]
        self.inner._save_arrays(_PrefixedWriter(writer, INNER_PREFIX))  # type: ignore[arg-type]

    @classmethod
    def _load(cls, reader: IndexReader, common: dict[str, Any]) -> MuveraIndex:
        config: MuveraConfig = common["config"]
        dim, count = common["dim"], common["count"]
        params = fde_params(config, dim)
        arrays = {
            name: np.asarray(reader.load_array(file))
            for name, file in _FDE_FILES.items()
            if reader.has(file)
        }
        try:
            encoder = FDEEncoder(params, arrays)
        except FormatError as exc:
            raise FormatError(f"{reader.root}: damaged index, {exc}") from None
        offsets = np.asarray(reader.load_array(OFFSETS_FILE))
        if offsets.shape != (count + 1,) or offsets[0] != 0 or (np.diff(offsets) <= 0).any():
            raise FormatError(f"{reader.root}: damaged index, {OFFSETS_FILE} is not valid")
        tokens = VectorStore.load(
            _PrefixedReader(reader, TOKENS_PREFIX),  # type: ignore[arg-type]
            config.tokens,
            dim,
            int(offsets[-1]),
        )
        inner_reader = _PrefixedReader(reader, INNER_PREFIX)
        inner_config: IndexConfig = config.inner
        inner = _inner_class(inner_config.kind)._load(
            inner_reader,  # type: ignore[arg-type]
            {
                "config": inner_config,
                "metric": "ip",
                "dim": params.out_dim,
                "count": count,
                "ids": None,
                "payloads": None,
                "build": dict(common.get("build", {}).get("inner", {})),
                "reader": inner_reader,
            },
        )
        return cls(encoder, inner, tokens, offsets, **common)
