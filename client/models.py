"""The wire contract: request and response bodies of the REST API.

Defined once, here, and imported by both the service and the client. Only pydantic, the
standard library and :mod:`glint.wire` are imported, so the client stays light.

The binary batch transport (``.npy`` in, ``.npz`` out), its media types and headers are those
of :mod:`glint.wire`; ``NPY_MEDIA_TYPE`` and ``NPZ_MEDIA_TYPE`` are re-exported here, and so
are the models of a search's ``filter`` (:mod:`glint.wire.filters`: :class:`Filter` and its
conditions), for building typed filters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from glint.wire import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE
from glint.wire.filters import (
    FieldCondition,
    Filter,
    HasIdCondition,
    IsEmptyCondition,
    IsEmptyKey,
    Match,
    Range,
)

__all__ = [
    "NPY_MEDIA_TYPE",
    "NPZ_MEDIA_TYPE",
    "BatchSearchRequest",
    "BatchSearchResponse",
    "CollectionInfo",
    "CollectionList",
    "ErrorBody",
    "ErrorResponse",
    "FieldCondition",
    "Filter",
    "HasIdCondition",
    "Health",
    "Hit",
    "Include",
    "IsEmptyCondition",
    "IsEmptyKey",
    "Match",
    "MetricName",
    "Range",
    "SearchRequest",
    "SearchResponse",
]

MetricName = Literal["ip", "cos", "l2"]
Include = Literal["payload"]

# The lists of a request stop at their first invalid item (fail_fast): a huge list of bad
# items then costs one error, not one per item (an 8 MB list of strings made 2M errors, and
# the server 2 GB of them); the first error, the one answered, is the same either way.
_Row = Annotated[list[float], Field(fail_fast=True)]
_Matrix = Annotated[list[_Row], Field(fail_fast=True)]


class _Model(BaseModel):
    """Request bodies: unknown fields are refused, so a typo is an error, not a no-op.
    Integer fields are strict: ``true``, ``2.0`` or ``"2"`` is no count."""

    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    """Response bodies: unknown fields are ignored, so older clients read newer servers."""

    model_config = ConfigDict(extra="ignore")


def _exactly_one(*fields: str) -> dict[str, Any]:
    """The JSON Schema of "exactly one of ``fields`` is given, and not null": the rule the
    model validators below enforce, published so that clients and fuzzers see it too."""
    return {"oneOf": [{"required": [f], "properties": {f: {"type": "array"}}} for f in fields]}


class SearchRequest(_Model):
    """One query: ``vector`` for a single-vector collection, ``vectors`` (a token matrix) for a
    multi-vector one."""

    model_config = ConfigDict(json_schema_extra=_exactly_one("vector", "vectors"))

    vector: list[float] | None = Field(
        default=None, fail_fast=True, description="The query vector."
    )
    vectors: _Matrix | None = Field(
        default=None,
        fail_fast=True,
        description="The query's token vectors (multi-vector collections).",
    )
    k: int = Field(default=10, ge=1, strict=True, description="How many hits to return.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Search parameters of the collection's index kind."
    )
    include: list[Include] = Field(
        default_factory=list, fail_fast=True, description="Extra fields to return with each hit."
    )
    filter: Filter | None = Field(
        default=None,
        description="Only points whose payload passes this filter are returned (its fields "
        "need a payload index).",
    )

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if (self.vector is None) == (self.vectors is None):
            raise ValueError("give exactly one of 'vector' and 'vectors'")
        return self


class Hit(_Response):
    """One search result."""

    id: int
    score: float
    payload: dict[str, Any] | None = None


class SearchResponse(_Response):
    hits: list[Hit]
    metric: MetricName
    larger_is_better: bool = Field(description="Whether a larger score is a closer match.")
    took_ms: float


class BatchSearchRequest(_Model):
    """Many queries at once (JSON form of the batch route): ``vectors`` (one row per query)
    for a single-vector collection, ``token_sets`` (one token matrix per query) for a
    multi-vector one."""

    model_config = ConfigDict(json_schema_extra=_exactly_one("vectors", "token_sets"))

    vectors: _Matrix | None = Field(default=None, min_length=1, fail_fast=True)
    token_sets: list[_Matrix] | None = Field(
        default=None,
        min_length=1,
        fail_fast=True,
        description="One token matrix per query (multi-vector).",
    )
    k: int = Field(default=10, ge=1, strict=True, description="Hits per query.")
    params: dict[str, Any] = Field(default_factory=dict)
    filter: Filter | None = Field(
        default=None, description="One filter for every query of the batch."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> BatchSearchRequest:
        if (self.vectors is None) == (self.token_sets is None):
            raise ValueError("give exactly one of 'vectors' and 'token_sets'")
        return self


class BatchSearchResponse(_Response):
    """Per query, the ids and scores of its hits, best first (rows may be shorter than ``k``
    when the collection holds fewer vectors)."""

    ids: list[list[int]]
    scores: list[list[float]]
    metric: MetricName
    larger_is_better: bool
    took_ms: float


class CollectionInfo(_Response):
    name: str
    kind: str
    spec: str
    metric: MetricName
    dim: int
    count: int
    multivector: bool = False
    memory_bytes: int = Field(description="Bytes the index holds in memory (mapped or not).")
    disk_bytes: int
    has_payloads: bool
    path: str
    format_version: int
    glint_version: str
    created: str
    build: dict[str, Any] = Field(default_factory=dict)


class CollectionList(_Response):
    collections: list[CollectionInfo]


class Health(_Response):
    """``/healthz`` and ``/readyz``. ``loading`` names collections being loaded or swapped
    (a collection being swapped keeps serving its old index); ``failed`` maps each collection
    whose start-up load failed to the reason (to ``"failed"`` for callers without an admin
    key). ``degraded``: some start-up loads failed, the other collections serve."""

    status: Literal["ok", "degraded", "loading", "unavailable"]
    collections: int = 0
    loading: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


class ErrorBody(_Response):
    code: str = Field(description="A stable machine-readable code, e.g. 'dimension_mismatch'.")
    message: str = Field(description="What is wrong, naming the field and the reason.")
    field: str | None = None


class ErrorResponse(_Response):
    error: ErrorBody
