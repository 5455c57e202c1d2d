"""Search: one query (JSON) or a batch (JSON or binary ``.npy`` in, ``.npz`` out)."""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.routing import Match, Route
from starlette.types import Scope

from glint.client.models import (
    BatchSearchRequest,
    BatchSearchResponse,
    ErrorResponse,
    Hit,
    SearchRequest,
    SearchResponse,
)
from glint.index import DimensionError, Index, InputError, SearchResult, TokenSets
from glint.index.multivec import as_token_sets
from glint.service.deps import ReadKey, SearchPool, Service, ServiceDep, authorize
from glint.service.errors import ServiceError
from glint.service.settings import Settings
from glint.wire import (
    JSON_MEDIA_TYPE,
    METRIC_HEADER,
    NPY_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    TOOK_MS_HEADER,
    DecodeError,
    decode_npy,
    decode_npz,
    encode_npz,
    media_type,
)

router = APIRouter(prefix="/v1/collections", tags=["search"])
M = TypeVar("M", bound=BaseModel)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 415, 422, 503)
}


def _check_k(k: int, settings: Settings) -> int:
    if k > settings.max_k:
        raise ServiceError("invalid_request", f"field 'k': must be at most {settings.max_k}", "k")
    return k


def _as_matrix(values: Any, field: str) -> np.ndarray:
    # float64, as JSON numbers are: the index converts to float32 and names a value that
    # overflows it, where a cast here would only leave an inf behind
    try:
        return np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise ServiceError(
            "invalid_request", f"field '{field}': rows must all have the same length", field
        ) from None


async def _run_search(
    pool: SearchPool,
    index: Index[Any],
    queries: np.ndarray | TokenSets,
    k: int,
    params: dict[str, Any],
    threads: int,
    field: str,
) -> tuple[SearchResult, float]:
    started = time.perf_counter()
    try:
        result = await pool.search(index, queries, k, params, threads)
    except DimensionError as exc:  # named after the request's field, not a fixed one
        raise ServiceError("dimension_mismatch", str(exc), field) from None
    took = (time.perf_counter() - started) * 1000.0
    # Finite float32 queries can still overflow the score arithmetic (a squared distance past
    # float32's range); such a score is no number a response can carry, so the query is refused.
    if not np.isfinite(result.scores[result.ids >= 0]).all():
        raise ServiceError(
            "invalid_request",
            f"field '{field}': values too large: the scores overflow float32",
            field,
        )
    return result, took


_SEARCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": SearchRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            }
        },
    }
}


def _parse_body(model: type[M], body: bytes) -> M:
    """Validate a JSON body straight from bytes (pydantic's parser, no dict in between)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@router.post(
    "/{name}/search",
    response_model=SearchResponse,
    responses=_ERRORS,
    openapi_extra=_SEARCH_OPENAPI,
)
async def search(name: str, request: Request, service: ServiceDep, _: ReadKey) -> Response:
    """Nearest neighbours of one query vector (or one token matrix for multi-vector)."""
    return await search_one(name, request, service)


class FastRoute(Route):
    """A Starlette route that records itself in the scope as FastAPI's routes do, so the
    metrics and access log label it by its path template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def fast_search_route() -> FastRoute:
    return FastRoute("/v1/collections/{name}/search", fast_search, methods=["POST"])


async def fast_search(request: Request) -> Response:
    """The same route as :func:`search`, as a plain Starlette endpoint that the app matches
    first. FastAPI's per-request machinery (dependency solving, parameter validation) is a
    visible share of a single query's latency (docs/benchmarks.md, the service section); the
    FastAPI route above still describes the route in the OpenAPI schema."""
    authorize(request, "read")
    return await search_one(request.path_params["name"], request, request.app.state.service)


async def search_one(name: str, request: Request, service: Service) -> Response:
    body = _parse_body(SearchRequest, await request.body())
    index = service.registry.get(name).index
    k = _check_k(body.k, service.settings)
    if index.multivector and body.vectors is None:
        raise ServiceError(
            "invalid_request",
            f"field 'vector': collection {name!r} is multi-vector; send a token matrix as "
            "'vectors'",
            "vector",
        )
    if not index.multivector and body.vector is None:
        raise ServiceError(
            "invalid_request",
            f"field 'vectors': collection {name!r} is single-vector; send one 'vector'",
            "vectors",
        )
    field = "vectors" if index.multivector else "vector"
    query = _as_matrix(body.vectors if index.multivector else body.vector, field)
    result, took = await _run_search(service.pool, index, query, k, body.params, 1, field)
    service.metrics.queries.labels(name).inc()
    keep = result.ids[0] >= 0
    ids = result.ids[0][keep].tolist()
    scores = result.scores[0][keep].tolist()
    payloads: dict[int, Any] = {}
    if "payload" in body.include and index.has_payloads:
        payloads = await service.pool.call(index.payloads, ids)
    hits = [Hit(id=i, score=s, payload=payloads.get(i)) for i, s in zip(ids, scores, strict=True)]
    answer = SearchResponse(
        hits=hits, metric=index.metric, larger_is_better=index.larger_is_better, took_ms=took
    )
    # serialised here, once: FastAPI would validate the model again before dumping it
    return Response(answer.model_dump_json(), media_type=JSON_MEDIA_TYPE)


def _decode_npy(body: bytes) -> np.ndarray:
    try:
        return decode_npy(body)
    except DecodeError as exc:
        raise ServiceError("invalid_body", str(exc)) from None


def _decode_npz_token_sets(body: bytes) -> TokenSets:
    """A binary multi-vector batch: an ``.npz`` holding ``tokens`` [T, d] and ``offsets``."""
    try:
        arrays = decode_npz(body, ("tokens", "offsets"))
    except DecodeError as exc:
        raise ServiceError("invalid_body", str(exc)) from None
    try:
        return as_token_sets(arrays, what="token sets")
    except InputError as exc:
        raise ServiceError("invalid_request", str(exc), "token_sets") from None


def _decode_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServiceError(
            "invalid_parameter", f"query 'params' is not JSON: {exc}", "params"
        ) from None
    if not isinstance(params, dict):
        raise ServiceError("invalid_parameter", "query 'params' must be a JSON object", "params")
    return params


_BATCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            # inline: no route takes the model as a parameter, so FastAPI would not add it to
            # the components and a $ref to it would dangle
            JSON_MEDIA_TYPE: {
                "schema": BatchSearchRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            },
            NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            NPZ_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/{name}/search/batch",
    response_model=BatchSearchResponse,
    responses={**_ERRORS, 200: {"content": {NPZ_MEDIA_TYPE: {}}}},
    openapi_extra=_BATCH_OPENAPI,
)
async def search_batch(
    name: str,
    request: Request,
    service: ServiceDep,
    _: ReadKey,
    k: int | None = Query(default=None, ge=1, description="Hits per query (binary bodies)."),
    params: str | None = Query(default=None, description="Search parameters as a JSON object."),
) -> Response | BatchSearchResponse:
    """Many queries at once: a JSON :class:`BatchSearchRequest`, an ``application/x-npy``
    float32 [nq, dim] body, or for a multi-vector collection an ``application/x-npz`` body
    with ``tokens`` and ``offsets``; answers ``.npz`` when the client accepts
    ``application/x-npz``."""
    settings = service.settings
    index = service.registry.get(name).index
    body = await request.body()  # bounded by BodyLimitMiddleware
    media = media_type(request.headers.get("content-type", JSON_MEDIA_TYPE))
    queries: Any
    if media == NPY_MEDIA_TYPE:
        queries = _decode_npy(body)
        k_value, search_params = k if k is not None else 10, _decode_params(params)
    elif media == NPZ_MEDIA_TYPE:
        queries = _decode_npz_token_sets(body)
        k_value, search_params = k if k is not None else 10, _decode_params(params)
    elif media == JSON_MEDIA_TYPE:
        try:
            parsed = BatchSearchRequest.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        if parsed.token_sets is not None:
            try:
                queries = TokenSets.from_list(
                    [_as_matrix(m, "token_sets") for m in parsed.token_sets], what="token_sets"
                )
            except InputError as exc:
                raise ServiceError("invalid_request", str(exc), "token_sets") from None
        else:
            queries = _as_matrix(parsed.vectors, "vectors")
        k_value, search_params = parsed.k, parsed.params
    else:
        raise ServiceError(
            "unsupported_media_type",
            f"content type {media!r} is not supported; use {JSON_MEDIA_TYPE}, {NPY_MEDIA_TYPE} "
            f"or (token sets) {NPZ_MEDIA_TYPE}",
        )
    is_sets = isinstance(queries, TokenSets)
    if index.multivector and not is_sets:
        raise ServiceError(
            "invalid_request",
            f"collection {name!r} is multi-vector; send one token matrix per query as "
            f"'token_sets' (JSON) or tokens and offsets as {NPZ_MEDIA_TYPE}",
            "token_sets",
        )
    if is_sets and not index.multivector:
        raise ServiceError(
            "invalid_request",
            f"collection {name!r} is single-vector; send one row per query as 'vectors'",
            "vectors",
        )
    nq = queries.count if is_sets else queries.shape[0]
    field = "token_sets" if is_sets else "vectors"
    if nq > settings.max_batch:
        raise ServiceError(
            "payload_too_large",
            f"batch of {nq} queries exceeds the limit of {settings.max_batch}",
            field,
        )
    k_value = _check_k(k_value, settings)
    result, took = await _run_search(
        service.pool, index, queries, k_value, search_params, settings.batch_threads, field
    )
    service.metrics.queries.labels(name).inc(nq)
    headers = {METRIC_HEADER: index.metric, TOOK_MS_HEADER: f"{took:.3f}"}
    if NPZ_MEDIA_TYPE in request.headers.get("accept", ""):
        content = encode_npz(ids=result.ids, scores=result.scores)
        return Response(content, media_type=NPZ_MEDIA_TYPE, headers=headers)
    ids, scores = [], []
    for row_ids, row_scores in zip(result.ids, result.scores, strict=True):
        keep = row_ids >= 0
        ids.append(row_ids[keep].tolist())
        scores.append(row_scores[keep].tolist())
    return BatchSearchResponse(
        ids=ids,
        scores=scores,
        metric=index.metric,
        larger_is_better=index.larger_is_better,
        took_ms=took,
    )
