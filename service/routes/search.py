"""Search: one query (JSON) or a batch (JSON or binary ``.npy`` in, ``.npz`` out).

Everything a request does runs within its ticket (:class:`~glint.service.deps.Ticket`): one
deadline, the request timeout, for reading the body, parsing it, waiting for a worker,
searching and encoding the answer. The event loop only ever parses small JSON bodies (under
:data:`~glint.service.limits.SMALL_JSON_BODY`); larger ones, binary bodies, and large answers
are parsed and encoded on the search pool's threads, which hold the request's admission
charge while they work (each first charges what the body really costs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
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
from glint.index.filters import FilterError
from glint.index.multivec import as_token_sets
from glint.service import stepwise
from glint.service.deps import ReadKey, SearchPool, Service, ServiceDep, Ticket, authorize
from glint.service.errors import ServiceError, filter_error
from glint.service.limits import (
    SMALL_ANSWER_HITS,
    SMALL_JSON_BODY,
    Charge,
    answer_cost,
    array_cost,
    charge_more,
    json_cost,
    npz_cost,
)
from glint.service.settings import Settings
from glint.wire import (
    JSON_MEDIA_TYPE,
    METRIC_HEADER,
    NPY_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    TOOK_MS_HEADER,
    DecodedTooLarge,
    DecodeError,
    decode_npy,
    decode_npz,
    encode_npz,
    media_type,
)
from glint.wire.filters import Filter

router = APIRouter(prefix="/v1/collections", tags=["search"])
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

_ROWS_AT_ONCE = 1000  # rows converted per step: each step holds the GIL for a few ms only
_ERRORS_READ = 100  # a validation error with more errors than this is not read (see _first_error)
_IDS: TypeAdapter[list[list[int]]] = TypeAdapter(list[list[int]])
_SCORES: TypeAdapter[list[list[float]]] = TypeAdapter(list[list[float]])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 415, 422, 503)
}


def _check_k(k: int, settings: Settings) -> int:
    if k > settings.max_k:
        raise ServiceError("invalid_request", f"field 'k': must be at most {settings.max_k}", "k")
    return k


def _as_matrix(values: Any, field: str) -> np.ndarray:
    """The float64 matrix of a JSON list of rows (or vector), converted a thousand rows at a
    time: numpy holds the GIL while it converts a list, so the event loop gets it back
    between steps when this runs on a pool thread."""
    # float64, as JSON numbers are: the index converts to float32 and names a value that
    # overflows it, where a cast here would only leave an inf behind
    try:
        if len(values) <= _ROWS_AT_ONCE or not isinstance(values[0], list):
            return np.asarray(values, dtype=np.float64)
        out = np.empty((len(values), len(values[0])), np.float64)
        for start in range(0, len(values), _ROWS_AT_ONCE):
            rows = np.asarray(values[start : start + _ROWS_AT_ONCE], dtype=np.float64)
            if rows.shape[1:] != out.shape[1:]:  # assigned as they are, they would broadcast
                raise ValueError("ragged")
            out[start : start + len(rows)] = rows
        return out
    except (ValueError, TypeError):
        raise ServiceError(
            "invalid_request", f"field '{field}': rows must all have the same length", field
        ) from None


async def _read_body(request: Request, pool: SearchPool, ticket: Ticket) -> bytes:
    """The request's body, read within the ticket's deadline (a client that sends it too
    slowly gets the 503 ``timeout``). Not kept on ``request``: the caller drops it once
    parsed."""
    with anyio.move_on_after(ticket.remaining()):
        chunks = [chunk async for chunk in request.stream()]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    pool.timed_out("the request body was not received")


async def _off_loop(
    pool: SearchPool, ticket: Ticket, large: bool, fn: Callable[..., R], *args: Any
) -> R:
    """``fn(*args)`` on a pool thread within ``ticket`` when ``large``, else here and now:
    a hop costs more than small work (measured: 40 us alone, +0.2 ms on the median single
    query, where parsing its 384 numbers takes 16 us)."""
    return await pool.call(fn, *args, ticket=ticket) if large else fn(*args)


async def _run_search(
    pool: SearchPool,
    index: Index[Any],
    queries: np.ndarray | TokenSets,
    k: int,
    params: dict[str, Any],
    threads: int,
    field: str,
    ticket: Ticket,
    filter: Filter | None = None,
) -> tuple[SearchResult, float]:
    started = time.perf_counter()
    try:
        result = await pool.search(index, queries, k, params, threads, ticket, filter=filter)
    except DimensionError as exc:  # named after the request's field, not a fixed one
        raise ServiceError("dimension_mismatch", str(exc), field) from None
    except FilterError as exc:  # an InputError too, but one that names its own place
        raise ServiceError("invalid_filter", str(exc), exc.field) from None
    except InputError as exc:  # a bad query (a zero vector under cos, say): the same
        raise ServiceError("invalid_input", str(exc), field) from None
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


SCHEMA_COMPONENTS: dict[str, Any] = {}
"""The models the request bodies below refer to (the filter's), for the app to add to the
OpenAPI schema's components: no route takes those bodies as parameters, so FastAPI does not."""


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a request body, described inline, its sub-models moved to
    :data:`SCHEMA_COMPONENTS` (where its references point)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    SCHEMA_COMPONENTS.update(schema.pop("$defs", {}))
    return schema


_SEARCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {JSON_MEDIA_TYPE: {"schema": _body_schema(SearchRequest)}},
    }
}


def _parse_body(model: type[M], body: bytes, charge: Charge | None = None) -> M:
    """Validate a JSON body straight from bytes (pydantic's parser, no dict in between),
    first charging what it will cost once parsed to ``charge``."""
    if charge is not None:
        charge.require(json_cost(body))
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([_first_error(exc)]) from None


def _first_error(exc: ValidationError) -> dict[str, Any]:
    """The error answered: the first. ``exc.errors()`` makes a dict of every error, and
    pydantic has no way to make only the first; the lists of a request stop at their first
    bad item (fail_fast), but a body can still hold a million unknown fields, each an
    error. Past :data:`_ERRORS_READ` of them, the answer says how many there are instead."""
    count = exc.error_count()
    if count <= _ERRORS_READ:
        return dict(exc.errors(include_url=False)[0])
    return {
        "type": "too_many_errors",
        "loc": ("body",),
        "msg": f"{count} errors (unknown fields or invalid values), too many to report one",
        "input": None,
    }


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
    pool = service.pool
    ticket = pool.ticket(request.scope)
    body = await _read_body(request, pool, ticket)
    large = len(body) >= SMALL_JSON_BODY
    parsed = await _off_loop(pool, ticket, large, _parse_body, SearchRequest, body, ticket.charge)
    del body  # parsed: only the model is needed
    # what the search needs, taken out of the model, which goes now: it would hold its
    # Python lists (a token matrix's floats) until the search ends
    k, params, payload = parsed.k, parsed.params, "payload" in parsed.include
    vector, vectors, flt = parsed.vector, parsed.vectors, _given(parsed.filter)
    del parsed
    index = service.registry.get(name).index
    k = _check_k(k, service.settings)
    if index.multivector and vectors is None:
        raise ServiceError(
            "invalid_request",
            f"field 'vector': collection {name!r} is multi-vector; send a token matrix as "
            "'vectors'",
            "vector",
        )
    if not index.multivector and vector is None:
        raise ServiceError(
            "invalid_request",
            f"field 'vectors': collection {name!r} is single-vector; send one 'vector'",
            "vectors",
        )
    field = "vectors" if index.multivector else "vector"
    values = vectors if index.multivector else vector
    del vector, vectors
    query = await _off_loop(pool, ticket, large, _as_matrix, values, field)
    del values
    result, took = await _run_search(pool, index, query, k, params, 1, field, ticket, flt)
    service.metrics.count_queries(name, 1, filtered=flt is not None)
    keep = result.ids[0] >= 0
    ids = result.ids[0][keep].tolist()
    scores = result.scores[0][keep].tolist()
    payloads: dict[int, Any] = {}
    if payload and index.has_payloads:
        payloads = await pool.call(index.payloads, ids, ticket=ticket)
    hits = [Hit(id=i, score=s, payload=payloads.get(i)) for i, s in zip(ids, scores, strict=True)]
    answer = SearchResponse(
        hits=hits, metric=index.metric, larger_is_better=index.larger_is_better, took_ms=took
    )
    # serialised here, once: FastAPI would validate the model again before dumping it
    return Response(answer.model_dump_json(), media_type=JSON_MEDIA_TYPE)


def _decode_npy(body: bytes, charge: Charge | None, max_bytes: int) -> np.ndarray:
    """A binary batch: an ``.npy`` float [nq, d] (its decoded array is no larger than the
    body, which the admission charge covers; what it costs is charged once it is known)."""
    try:
        queries = decode_npy(body, max_bytes=max_bytes)
    except DecodedTooLarge as exc:
        raise ServiceError("payload_too_large", str(exc)) from None
    except DecodeError as exc:
        raise ServiceError("invalid_body", str(exc)) from None
    if charge is not None:
        charge.require(array_cost(body, queries))
    return queries


_NPZ_KEYS = ("tokens", "offsets")


def _decode_npz_token_sets(body: bytes, charge: Charge | None, max_bytes: int) -> TokenSets:
    """A binary multi-vector batch: an ``.npz`` holding ``tokens`` [T, d] and ``offsets``,
    charged the size its members inflate to before they are decompressed."""
    if charge is not None:
        declared = npz_cost(body, _NPZ_KEYS)
        if declared - len(body) <= max_bytes:  # over it, the decoder refuses without inflating
            charge.require(declared)
    try:
        arrays = decode_npz(body, _NPZ_KEYS, max_bytes=max_bytes)
    except DecodedTooLarge as exc:
        raise ServiceError("payload_too_large", str(exc)) from None
    except DecodeError as exc:
        raise ServiceError("invalid_body", str(exc)) from None
    if charge is not None:
        charge.require(array_cost(body, *arrays.values()))
    try:
        return as_token_sets(arrays, what="token sets")
    except InputError as exc:
        raise ServiceError("invalid_request", str(exc), "token_sets") from None


# queries (float64 matrix or TokenSets), k, params, filter (None: none, or one without clauses)
_Batch = tuple[Any, int, dict[str, Any], Filter | None]


def _given(flt: Filter | None) -> Filter | None:
    """The filter a search applies: None for none, and for one without clauses."""
    return None if flt is None or flt.is_empty() else flt


def _json_batch(body: bytes, charge: Charge | None) -> _Batch:
    """A JSON batch: its queries, ``k``, ``params`` and filter. A large body of the plain
    shape is validated a step at a time (:mod:`glint.service.stepwise`); any other, whole,
    its Python lists dropped as this returns, leaving the arrays."""
    split = stepwise.split(body) if len(body) >= SMALL_JSON_BODY else None
    if split is not None:
        if charge is not None:
            charge.require(json_cost(body, step=stepwise.STEP_BYTES))
        stepped = _stepped_batch(split)
        if stepped is not None:
            return stepped
    parsed = _parse_body(BatchSearchRequest, body, charge)
    flt = _given(parsed.filter)
    if parsed.token_sets is None:
        return _as_matrix(parsed.vectors, "vectors"), parsed.k, parsed.params, flt
    return _token_sets(parsed.token_sets), parsed.k, parsed.params, flt


def _token_sets(sets: Iterable[Any]) -> TokenSets:
    try:
        return TokenSets.from_list([_as_matrix(m, "token_sets") for m in sets], what="token_sets")
    except InputError as exc:
        raise ServiceError("invalid_request", str(exc), "token_sets") from None


def _stepped_batch(split: stepwise.Split) -> _Batch | None:
    """The batch of a body split in steps, or None to validate it whole: when it does not
    validate, so that its error is the one the whole body gets."""
    try:
        parsed = BatchSearchRequest.model_validate_json(split.masked)
        if getattr(parsed, split.field) != split.placeholder_value:
            return None  # the placeholder is not the field's value: not the shape we took
        flt = _given(parsed.filter)
        if split.field == "token_sets":
            sets = _token_sets(s for step in split.steps() for s in step)
            return sets, parsed.k, parsed.params, flt
        out: np.ndarray | None = None
        filled = 0
        for step in split.steps():
            rows = _as_matrix(step, "vectors")
            if out is None:
                out = np.empty((split.items, *rows.shape[1:]), np.float64)
            if rows.shape[1:] != out.shape[1:]:
                raise ServiceError(
                    "invalid_request",
                    "field 'vectors': rows must all have the same length",
                    "vectors",
                )
            if filled + len(rows) > len(out):
                return None  # not the count of rows the split saw: validate the body whole
            out[filled : filled + len(rows)] = rows
            filled += len(rows)
    except ValidationError:
        return None
    if out is None or filled != len(out):
        return None
    return out, parsed.k, parsed.params, flt


def _decode_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServiceError(
            "invalid_parameter", f"query 'params' is not JSON: {exc}", "params"
        ) from None
    except RecursionError:  # the json module recurses once per level of nesting
        raise ServiceError(
            "invalid_parameter", "query 'params' is nested too deeply", "params"
        ) from None
    if not isinstance(params, dict):
        raise ServiceError("invalid_parameter", "query 'params' must be a JSON object", "params")
    return params


def _decode_filter(text: str | None) -> Filter | None:
    """The ``filter`` query parameter of a binary batch: a filter as a JSON object, its
    errors named as those of a JSON body's ``filter`` are."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServiceError(
            "invalid_filter", f"query 'filter' is not JSON: {exc}", "filter"
        ) from None
    except RecursionError:  # the json module recurses once per level of nesting
        raise ServiceError(
            "invalid_filter", "query 'filter' is nested too deeply", "filter"
        ) from None
    if not isinstance(value, dict):
        raise ServiceError("invalid_filter", "query 'filter' must be a JSON object", "filter")
    try:
        return _given(Filter.model_validate(value))
    except ValidationError as exc:
        raise filter_error(exc.errors(include_url=False)[0]) from None  # a query holds few


_BATCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            # inline: no route takes the model as a parameter, so FastAPI would not add it to
            # the components and a $ref to it would dangle
            JSON_MEDIA_TYPE: {"schema": _body_schema(BatchSearchRequest)},
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
    filter_: str | None = Query(
        default=None,
        alias="filter",
        description="A filter as a JSON object, for every query (binary bodies; a JSON body "
        "has its own 'filter').",
    ),
) -> Response:
    """Many queries at once: a JSON :class:`BatchSearchRequest`, an ``application/x-npy``
    float32 [nq, dim] body, or for a multi-vector collection an ``application/x-npz`` body
    with ``tokens`` and ``offsets``; answers ``.npz`` when the client accepts
    ``application/x-npz``."""
    settings, pool = service.settings, service.pool
    ticket = pool.ticket(request.scope)
    index = service.registry.get(name).index
    media = media_type(request.headers.get("content-type", JSON_MEDIA_TYPE))
    if media not in (JSON_MEDIA_TYPE, NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE):
        raise ServiceError(
            "unsupported_media_type",
            f"content type {media!r} is not supported; use {JSON_MEDIA_TYPE}, {NPY_MEDIA_TYPE} "
            f"or (token sets) {NPZ_MEDIA_TYPE}",
        )
    queries, k_value, search_params, flt = await _read_batch(request, service, ticket, media)
    if media != JSON_MEDIA_TYPE:
        k_value, search_params = k if k is not None else 10, _decode_params(params)
        flt = _decode_filter(filter_)
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
    npz = NPZ_MEDIA_TYPE in request.headers.get("accept", "")
    ticket = _charge_answer(request.scope, ticket, nq * k_value, npz)
    result, took = await _run_search(
        pool, index, queries, k_value, search_params, settings.batch_threads, field, ticket, flt
    )
    del queries
    service.metrics.count_queries(name, nq, filtered=flt is not None)
    large = result.ids.size > SMALL_ANSWER_HITS  # encoded on a pool thread; smaller, here
    return await _off_loop(pool, ticket, large, _batch_answer, result, index, took, npz)


def _charge_answer(scope: Scope, ticket: Ticket, hits: int, npz: bool) -> Ticket:
    """Charge the request what its answer of (at most) ``hits`` hits will cost, before the
    search: 503 ``unavailable`` if the budget cannot take it. A request not charged so far
    (a small JSON body) gets a charge, unless its answer is small too; the ticket returned
    carries the charge, for the worker threads to hold."""
    if ticket.charge is None and hits <= SMALL_ANSWER_HITS:
        return ticket
    charge = charge_more(scope, answer_cost(hits, npz=npz))
    return ticket if charge is ticket.charge else Ticket(ticket.deadline, charge)


async def _read_batch(request: Request, service: Service, ticket: Ticket, media: str) -> _Batch:
    """A batch body's queries, and for JSON its ``k``, ``params`` and filter (the query
    string's are read by the caller), read and parsed within ``ticket``; the body is dropped
    as this returns."""
    pool, charge = service.pool, ticket.charge
    body = await _read_body(request, pool, ticket)
    max_bytes = service.settings.max_decoded_bytes
    if media == NPY_MEDIA_TYPE:
        return await pool.call(_decode_npy, body, charge, max_bytes, ticket=ticket), 10, {}, None
    if media == NPZ_MEDIA_TYPE:
        sets = await pool.call(_decode_npz_token_sets, body, charge, max_bytes, ticket=ticket)
        return sets, 10, {}, None
    large = len(body) >= SMALL_JSON_BODY
    return await _off_loop(pool, ticket, large, _json_batch, body, charge)


def _batch_answer(result: SearchResult, index: Index[Any], took: float, npz: bool) -> Response:
    """The answer to a batch: ``.npz`` (with the metric and time in headers) or JSON."""
    if npz:
        headers = {METRIC_HEADER: index.metric, TOOK_MS_HEADER: f"{took:.3f}"}
        content = encode_npz(ids=result.ids, scores=result.scores)
        return Response(content, media_type=NPZ_MEDIA_TYPE, headers=headers)
    # A BatchSearchResponse's JSON, written a thousand rows at a time: only one step's
    # Python ints and floats exist at once (~70 bytes a hit), the rest is text already.
    ids: list[bytes] = []
    scores: list[bytes] = []
    for start in range(0, len(result.ids), _ROWS_AT_ONCE):
        stop = start + _ROWS_AT_ONCE
        step_ids, step_scores = [], []
        step = zip(result.ids[start:stop], result.scores[start:stop], strict=True)
        for row_ids, row_scores in step:
            keep = row_ids >= 0
            step_ids.append(row_ids[keep].tolist())
            step_scores.append(row_scores[keep].tolist())
        for parts, adapter, rows in ((ids, _IDS, step_ids), (scores, _SCORES, step_scores)):
            if parts:
                parts.append(b",")
            parts.append(adapter.dump_json(rows)[1:-1])  # the rows, without the list's [ ]
        del step_ids, step_scores
    rest = BatchSearchResponse(
        ids=[],
        scores=[],
        metric=index.metric,
        larger_is_better=index.larger_is_better,
        took_ms=took,
    ).model_dump_json(exclude={"ids", "scores"})
    content = b"".join([b'{"ids":[', *ids, b'],"scores":[', *scores, b"],", rest[1:].encode()])
    return Response(content, media_type=JSON_MEDIA_TYPE)
