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
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import Field, field_validator
from typing_extensions import Self

from .api import build_index
from .base import AllowedRows, Index, IndexMeta
from .config import (
    IndexConfig,
    SearchParams,
    candidate_count,
    refuse_over_cap,
    refuse_reserved,
    validate_model,
)
from .errors import ConfigError, FormatError
from .fde import FDEEncoder, FDEParams
from .metrics import Metric
from .multivec import TokenSets, as_token_sets, pool_tokens, rerank_chamfer
from .registry import config_from_dict, get_kind, kind_names, parse_spec, register
from .storage import IndexReader, IndexWriter
from .vecstore import VectorStore

__all__ = ["MuveraConfig", "MuveraIndex", "MuveraSearchParams"]

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
# At least this many candidates by default (docs/benchmarks.md shows the recall it buys on
# multivec-minilm); fewer trade recall for speed, per query.
DEFAULT_MIN_CANDIDATES = 1000


def default_candidates(k: int) -> int:
    """Documents re-ranked per query when ``candidates`` is not given: max(10·k, 1000)."""
    return max(DEFAULT_CANDIDATE_FACTOR * k, DEFAULT_MIN_CANDIDATES)


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


class MuveraConfig(IndexConfig):
    """Multi-vector retrieval through MUVERA fixed dimensional encodings (FDEs).

    Each document's token set becomes one FDE of ``r_reps · 2^k_sim · dim_proj`` dimensions
    (or ``final_dim`` after a count sketch), searched by the single-vector ``inner`` index;
    the ``candidates`` it finds are re-ranked by exact Chamfer/MaxSim on the stored tokens
    (``tokens`` storage). ``dim_proj=0`` keeps the tokens' own dimensions (no projection);
    ``pool_factor`` > 1 clusters each document's tokens (Ward) and stores the cluster means
    (the FDEs are still encoded from every input token).
    """

    kind: ClassVar[str] = "muvera"
    k_sim: int = Field(default=4, ge=0, le=10, description="SimHash hyperplanes per repetition.")
    dim_proj: int = Field(default=16, ge=0, le=4096, description="Projected dims (0 = none).")
    r_reps: int = Field(default=10, ge=1, le=256, description="Independent repetitions.")
    final_dim: int = Field(default=0, ge=0, le=1 << 20, description="Count sketch (0 = none).")
    pool_factor: int = Field(default=1, ge=1, le=64, description="Token pooling factor.")
    tokens: Literal["f32", "f16", "lvq8"] = "lvq8"
    seed: int = Field(default=20261122, ge=0, le=(1 << 63) - 1)
    inner: IndexConfig = Field(default_factory=lambda: parse_spec("hnsw:storage=lvq4"))

    @field_validator("inner", mode="before")
    @classmethod
    def _inner_spec(cls, value: Any) -> IndexConfig:
        if isinstance(value, IndexConfig):
            config = value
        elif isinstance(value, str):
            config = parse_spec(value)
        elif isinstance(value, Mapping) and isinstance(value.get("kind"), str):
            rest = {k: v for k, v in value.items() if k != "kind"}
            config = config_from_dict(value["kind"], rest)
        else:
            raise ValueError("must be the spec of a single-vector index, e.g. (hnsw:m=32)")
        if get_kind(config.kind).index.multivector:
            single = [n for n in kind_names() if not get_kind(n).index.multivector]
            raise ValueError(f"must be a single-vector index kind ({', '.join(single)})")
        return config

    def manifest_dict(self) -> dict[str, Any]:
        """The config as a manifest stores it (the inner config with its kind)."""
        out = self.model_dump(mode="json")
        out["inner"] = {"kind": self.inner.kind, **self.inner.model_dump(mode="json")}
        return out


class MuveraSearchParams(SearchParams):
    """``candidates``: documents the inner index returns for exact re-ranking (default
    max(10·k, 1000)); every other key goes to the inner index, whose parameters ``inner``
    holds."""

    candidates: int | None = candidate_count(
        le=65536, description="Candidates re-ranked exactly (default max(10·k, 1000))."
    )
    inner: SearchParams = Field(default_factory=SearchParams)

    @classmethod
    def parse(
        cls,
        raw: Mapping[str, Any] | None,
        *,
        what: str,
        inner: str | None = None,
        cap: int | None = None,
    ) -> Self:
        """``candidates``, and the other keys as the ``inner`` kind's search parameters
        (checked first, against ``cap`` too, as they were before this kind's own)."""
        values = dict(raw or {})
        refuse_reserved(values)
        candidates = values.pop("candidates", None)
        inner_type = get_kind(inner or "flat").params
        for key in values:
            if key not in inner_type.model_fields:
                valid = ", ".join(["candidates", *inner_type.model_fields])
                raise ConfigError(
                    f"unknown key {key!r} for search on a 'muvera' index over {inner!r}; "
                    f"valid keys: {valid}"
                )
        inner_params = inner_type.parse(values, what=what, cap=cap)
        top = {} if candidates is None else {"candidates": candidates}
        if cap is not None:
            refuse_over_cap(cls, top, cap)
        checked = validate_model(cls, top, what)
        out = cls.model_construct(
            _fields_set=set(top), candidates=checked.candidates, inner=inner_params
        )
        return out

    def given(self) -> dict[str, Any]:
        top = {} if "candidates" not in self.model_fields_set else {"candidates": self.candidates}
        return {**top, **self.inner.given()}

    def capped(self, cap: int) -> Self:
        """``candidates`` as every kind caps its own, then the inner index's parameters."""
        out = super().capped(cap)
        inner = out.inner.capped(cap)
        if inner is out.inner:
            return out
        values = {"candidates": out.candidates, "inner": inner}
        return out._rebuilt(values, out.resolved_for, cap)


class MuveraIndex(Index[MuveraSearchParams]):
    kind = "muvera"
    config_type = MuveraConfig
    params_type = MuveraSearchParams
    multivector = True
    config: MuveraConfig

    def __init__(
        self,
        meta: IndexMeta,
        encoder: FDEEncoder,
        inner: Index[Any],
        tokens: VectorStore,
        token_offsets: np.ndarray,
    ) -> None:
        super().__init__(meta)
        self.encoder = encoder
        self.inner = inner
        self.tokens = tokens
        self.token_offsets = token_offsets

    # -- build ------------------------------------------------------------------------------
    @classmethod
    def prepare_data(cls, data: Any, metric: Metric) -> tuple[Any, int, int]:
        """Token sets (see :func:`~glint.index.multivec.as_token_sets`), normalised for
        ``cos``."""
        sets = as_token_sets(data, what="documents")
        sets = sets.normalized(what="tokens of the documents") if metric == "cos" else sets
        return sets, sets.count, sets.dim

    @classmethod
    def build(
        cls, data: Any, meta: IndexMeta, progress: Callable[[int], None] | None = None
    ) -> MuveraIndex:
        docs = cast(TokenSets, data)
        config = cast(MuveraConfig, meta.config)
        if meta.metric == "l2":
            raise ConfigError(
                "muvera scores by Chamfer similarity over inner products; use metric ip or cos"
            )
        threads = int(meta.build.get("threads", 1))
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
        info = {
            "fde_dim": params.out_dim,
            "input_tokens": int(docs.offsets[-1]),
            "stored_tokens": int(stored.offsets[-1]),
            "documents_per_second": round(docs.count / encode_s, 1),
            **{key: round(value, 3) for key, value in timings.items()},
            "inner": inner.build_info,
        }
        resolved = config.model_copy(update={"inner": inner.config})
        return cls(meta.but(config=resolved, build=info), encoder, inner, store, stored.offsets)

    # -- search -----------------------------------------------------------------------------
    def _parse_params(
        self, params: Mapping[str, Any] | None, cap: int | None
    ) -> MuveraSearchParams:
        what = "search on a 'muvera' index"
        return MuveraSearchParams.parse(params, what=what, inner=self.inner.kind, cap=cap)

    def _defaults(self, k: int, params: MuveraSearchParams, cap: int | None) -> dict[str, Any]:
        """``candidates`` (lowered to ``cap`` if it is a default over it), and the inner
        index's parameters resolved, under the same cap, for the depth this search asks of
        it."""
        candidates = params.candidates
        if candidates is None:
            candidates = default_candidates(k)
            if cap is not None and candidates > cap:
                candidates = min(cap, MuveraSearchParams.limit("candidates") or cap)
        depth = self._depth(k, candidates)
        return {
            "candidates": candidates,
            "inner": self.inner.resolve_params(depth, params.inner, cap=cap),
        }

    def _check(self, params: MuveraSearchParams) -> None:
        self.inner._check(params.inner)

    def prepare_queries(self, queries: Any) -> TokenSets:
        """Query token sets (one [t, dim] matrix, a list of them, or tokens with offsets)."""
        sets = as_token_sets(queries, what="query tokens", dim=self.dim)
        return sets.normalized(what="tokens of the queries") if self.metric == "cos" else sets

    def encode_queries(self, queries: Any, *, threads: int = 1) -> np.ndarray:
        """Query FDEs, float32 [nq, fde_dim]."""
        sets = self.prepare_queries(queries)
        return self.encoder.encode_queries(sets.tokens, sets.offsets, threads=threads)

    def _search(
        self,
        queries: Any,
        k: int,
        params: MuveraSearchParams,
        threads: int,
        allowed: AllowedRows | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        sets = cast(TokenSets, queries)
        fdes = self.encoder.encode_queries(sets.tokens, sets.offsets, threads=threads)
        # params.inner was resolved for this depth, under the same cap
        depth = self._depth(k, params.candidates)
        # the filter applies to the inner index's candidates (its rows are the documents)
        cand, _ = self.inner._search(fdes, depth, params.inner, threads, allowed)
        return self.rerank(sets, cand, k, threads=threads)

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
        self.tokens.save(writer.sub(TOKENS_PREFIX))
        self.inner._save_arrays(writer.sub(INNER_PREFIX))

    @classmethod
    def _files(cls, reader: IndexReader, config: IndexConfig, metric: Metric) -> set[str]:
        c = cast(MuveraConfig, config)
        fde = ["hyperplanes"]  # and the optional matrices of FDEEncoder.arrays
        if c.dim_proj:
            fde.append("projection")
        if c.final_dim:
            fde += ["sketch_buckets", "sketch_signs"]
        tokens = VectorStore.files(reader.sub(TOKENS_PREFIX), c.tokens)
        inner_kind = get_kind(c.inner.kind).index
        inner = inner_kind._files(reader.sub(INNER_PREFIX), c.inner, "ip")
        return {
            *(_FDE_FILES[name] for name in fde),
            OFFSETS_FILE,
            *(TOKENS_PREFIX + name for name in tokens),
            *(INNER_PREFIX + name for name in inner),
        }

    @classmethod
    def _load(cls, reader: IndexReader, meta: IndexMeta) -> MuveraIndex:
        config = cast(MuveraConfig, meta.config)
        if meta.metric == "l2":
            raise FormatError(
                f'{reader.manifest_path}: damaged manifest, metric is "l2", but muvera scores '
                "by inner products (ip or cos)"
            )
        params = fde_params(config, meta.dim)
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
        if (
            offsets.shape != (meta.count + 1,)
            or offsets.dtype != np.int64
            or offsets[0] != 0
            or (np.diff(offsets) <= 0).any()
        ):
            raise FormatError(f"{reader.root}: damaged index, {OFFSETS_FILE} is not valid")
        tokens = VectorStore.load(
            reader.sub(TOKENS_PREFIX), config.tokens, meta.dim, int(offsets[-1])
        )
        inner_reader = reader.sub(INNER_PREFIX)
        inner_build = meta.build.get("inner")
        inner_meta = IndexMeta(
            config.inner,
            "ip",
            params.out_dim,
            meta.count,
            build=dict(inner_build) if isinstance(inner_build, Mapping) else {},
            reader=inner_reader,
        )
        inner = get_kind(config.inner.kind).index._load(inner_reader, inner_meta)
        return cls(meta, encoder, inner, tokens, offsets)


register(MuveraIndex)
