"""The index spec grammar and the typed configs it parses into.

A spec is one string, ``KIND[:key=value,...]``; a value may be a nested spec in parentheses
(``muvera:r_reps=20,inner=(hnsw:m=32)``). :func:`parse_spec` turns it into a frozen pydantic
config, one class per kind; :meth:`IndexConfig.spec` turns a config back into its canonical
string. Build configs and search parameters are separate types: :func:`parse_search_params`
validates the keys a search accepts for a given kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = [
    "FlatConfig",
    "FlatSearchParams",
    "HNSWConfig",
    "HNSWSearchParams",
    "IVFPQConfig",
    "IVFPQSearchParams",
    "IndexConfig",
    "MuveraConfig",
    "MuveraSearchParams",
    "SearchParams",
    "config_from_dict",
    "parse_search_params",
    "parse_spec",
    "split_spec",
]


class IndexConfig(BaseModel):
    """Base of every build config: frozen, and unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str]

    def spec(self) -> str:
        """The canonical spec string: the kind and every key, in declaration order."""
        parts = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, IndexConfig):
                text = f"({value.spec()})"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            parts.append(f"{name}={text}")
        return f"{self.kind}:{','.join(parts)}" if parts else self.kind

    def manifest_dict(self) -> dict[str, Any]:
        """The config as the manifest stores it (read back by :func:`config_from_dict`)."""
        return self.model_dump(mode="json")


class SearchParams(BaseModel):
    """Base of every kind's search parameters: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FlatConfig(IndexConfig):
    """Exact search over stored vectors."""

    kind: ClassVar[str] = "flat"
    storage: Literal["f32", "f16", "lvq8"] = "f32"


class FlatSearchParams(SearchParams):
    """Exact search takes no search parameters."""


class HNSWConfig(IndexConfig):
    """A hierarchical navigable small-world graph over f32, f16 or LVQ-compressed storage."""

    kind: ClassVar[str] = "hnsw"
    m: int = Field(default=32, ge=4, le=128, description="Graph degree (2m on layer 0).")
    ef_construction: int = Field(default=200, ge=8, le=4096)
    storage: Literal["f32", "f16", "lvq8", "lvq4", "lvq4x4", "lvq4x8"] = "lvq4x8"


class HNSWSearchParams(SearchParams):
    ef_search: int = Field(default=64, ge=1, le=16384, description="Beam width on layer 0.")
    rerank: int | None = Field(
        default=None,
        ge=1,
        le=16384,
        description="Candidates re-scored with the residual level (default: all ef_search).",
    )


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
    rerank_k: int | None = Field(
        default=None,
        ge=1,
        le=16384,
        description="Candidates re-scored exactly (default 10·k; needs rerank=lvq8|f32).",
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
    inner: IndexConfig = Field(default_factory=lambda: HNSWConfig(storage="lvq4"))

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
        if isinstance(config, MuveraConfig):
            raise ValueError("must be a single-vector index kind (flat, hnsw or ivfpq)")
        return config

    def manifest_dict(self) -> dict[str, Any]:
        """The config as a manifest stores it (the inner config with its kind)."""
        out = self.model_dump(mode="json")
        out["inner"] = {"kind": self.inner.kind, **self.inner.model_dump(mode="json")}
        return out


class MuveraSearchParams(SearchParams):
    """``candidates``: documents the inner index returns for exact re-ranking (default
    max(10·k, 1000)); every other key goes to the inner index (see :func:`parse_search_params`)."""

    candidates: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Candidates re-ranked exactly (default max(10·k, 1000)).",
    )
    inner: SearchParams = Field(default_factory=SearchParams)


_KINDS: dict[str, type[IndexConfig]] = {
    "flat": FlatConfig,
    "hnsw": HNSWConfig,
    "ivfpq": IVFPQConfig,
    "muvera": MuveraConfig,
}
_SEARCH_PARAMS: dict[str, type[SearchParams]] = {
    "flat": FlatSearchParams,
    "hnsw": HNSWSearchParams,
    "ivfpq": IVFPQSearchParams,
}


def search_param_limit(kind: str, key: str) -> int | None:
    """The largest value search parameter ``key`` takes on a ``kind`` index (None: no limit)."""
    model = MuveraSearchParams if kind == "muvera" else _SEARCH_PARAMS.get(kind)
    field = model.model_fields.get(key) if model is not None else None
    for rule in field.metadata if field is not None else ():
        limit = getattr(rule, "le", None)
        if limit is not None:
            return int(limit)
    return None


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``KIND[:key=value,...]`` into the kind and its raw string values.

    Parentheses group a nested spec; the outer pair is removed from the value.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("index spec is empty; expected KIND[:key=value,...], e.g. 'flat'")
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip()
    values: dict[str, str] = {}
    if not sep:
        return kind, values
    if not rest.strip():
        raise ConfigError(f"index spec {spec!r} has ':' but no key=value pairs after it")
    for item in _split_top_level(rest, spec):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ConfigError(f"index spec {spec!r}: {item.strip()!r} is not key=value")
        if key in values:
            raise ConfigError(f"index spec {spec!r}: key {key!r} is given twice")
        if value.startswith("(") and value.endswith(")"):
            value = value[1:-1].strip()
        values[key] = value
    return kind, values


def _split_top_level(text: str, spec: str) -> list[str]:
    items, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"index spec {spec!r}: unbalanced ')'")
        elif char == "," and depth == 0:
            items.append(text[start:pos])
            start = pos + 1
    if depth != 0:
        raise ConfigError(f"index spec {spec!r}: unbalanced '('")
    items.append(text[start:])
    return items


def _config_class(kind: str) -> type[IndexConfig]:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown index kind {kind!r}; valid kinds: {', '.join(sorted(_KINDS))}"
        ) from None


def _validate(model: type[BaseModel], values: Mapping[str, Any], what: str) -> Any:
    valid = list(model.model_fields)
    for key in values:
        if key not in model.model_fields:
            listing = ", ".join(valid) if valid else "none"
            raise ConfigError(f"unknown key {key!r} for {what}; valid keys: {listing}")
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"invalid value {err.get('input')!r} for key {key!r} of {what}: {message}"
        ) from None


def parse_spec(spec: str | IndexConfig) -> IndexConfig:
    """Parse a spec string (or pass a config through) into the kind's typed config."""
    if isinstance(spec, IndexConfig):
        return spec
    kind, values = split_spec(spec)
    cls = _config_class(kind)
    return _validate(cls, values, f"index kind {kind!r}")  # type: ignore[no-any-return]


def config_from_dict(kind: str, values: Mapping[str, Any]) -> IndexConfig:
    """Rebuild a config from a manifest's ``kind`` and ``config`` entries."""
    return _validate(_config_class(kind), values, f"index kind {kind!r}")  # type: ignore[no-any-return]


def parse_search_params(
    kind: str, params: Mapping[str, Any] | None, *, inner: str | None = None
) -> SearchParams:
    """Validate search parameters for ``kind``; unknown keys name the valid ones.

    A ``muvera`` index takes ``candidates`` and the keys of its ``inner`` index's kind.
    """
    if kind == "muvera":
        values = dict(params or {})
        candidates = values.pop("candidates", None)
        inner_kind = inner or "flat"
        inner_model = _SEARCH_PARAMS[inner_kind]
        for key in values:
            if key not in inner_model.model_fields:
                valid = ", ".join(["candidates", *inner_model.model_fields])
                raise ConfigError(
                    f"unknown key {key!r} for search on a 'muvera' index over {inner_kind!r}; "
                    f"valid keys: {valid}"
                )
        inner_params = _validate(inner_model, values, "search on a 'muvera' index")
        top = {} if candidates is None else {"candidates": candidates}
        checked = _validate(MuveraSearchParams, top, "search on a 'muvera' index")
        return checked.model_copy(update={"inner": inner_params})  # type: ignore[no-any-return]
    model = _SEARCH_PARAMS[kind]
    return _validate(model, params or {}, f"search on a {kind!r} index")  # type: ignore[no-any-return]
