"""A fake glint server, run in-process behind :class:`httpx.MockTransport`.

It follows the REST contract of ``glint.client.models``: JSON routes, the binary (npy in,
npz out) batch route, the error envelope and Bearer auth. It records every request it sees and
can be told to fail the next calls (``server.failures``) with responses or transport errors.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from glint.client import (
    NPY_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    AsyncClient,
    BatchSearchRequest,
    BatchSearchResponse,
    Client,
    CollectionInfo,
    CollectionList,
    ErrorBody,
    ErrorResponse,
    Health,
    Hit,
    RetryConfig,
    SearchRequest,
    SearchResponse,
)

FAST_RETRIES = RetryConfig(max_retries=2, backoff_base=0.0, jitter=False)

Failure = httpx.Response | type[httpx.RequestError]


def error(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, field=field))
    return httpx.Response(status, json=body.model_dump())


class FakeServer:
    """One collection, ``docs``: ``count`` vectors of dimension ``dim``."""

    def __init__(self, metric: str = "ip", api_key: str | None = None) -> None:
        self.metric = metric
        self.api_key = api_key
        self.dim = 4
        rng = np.random.default_rng(7)
        self.data = rng.standard_normal((3, self.dim)).astype(np.float32)
        self.ready = True
        self.calls: list[httpx.Request] = []
        self.failures: list[Failure] = []

    @property
    def larger_is_better(self) -> bool:
        return self.metric != "l2"

    def info(self, path: str = "/data/docs") -> CollectionInfo:
        return CollectionInfo(
            name="docs",
            kind="flat",
            spec="Flat",
            metric=self.metric,  # type: ignore[arg-type]
            dim=self.dim,
            count=len(self.data),
            memory_bytes=self.data.nbytes,
            disk_bytes=1024,
            has_payloads=True,
            path=path,
            format_version=1,
            glint_version="0.1.0",
            created="2024-01-01T00:00:00Z",
            build={"seconds": 0.1},
        )

    # -- search ------------------------------------------------------------------------------

    def top_k(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search; rows hold min(k, count) hits."""
        if self.metric == "l2":
            scores = ((queries[:, None, :] - self.data[None, :, :]) ** 2).sum(-1)
            order = np.argsort(scores, axis=1, kind="stable")
        else:
            scores = queries @ self.data.T
            order = np.argsort(-scores, axis=1, kind="stable")
        order = order[:, :k]
        return order.astype(np.int64), np.take_along_axis(scores, order, 1).astype(np.float32)

    def padded(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.top_k(queries, k)
        pad = k - ids.shape[1]
        fill = -np.inf if self.larger_is_better else np.inf
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=fill)
        return ids, scores.astype(np.float32)

    # -- routing -----------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, httpx.Response):
                return failure
            raise failure("simulated failure", request=request)
        path = request.url.path
        if path == "/healthz":
            return httpx.Response(200, json=Health(status="ok", collections=1).model_dump())
        if path == "/readyz":
            health = Health(status="ok" if self.ready else "loading", collections=1)
            return httpx.Response(200 if self.ready else 503, json=health.model_dump())
        if self.api_key is not None:
            if "authorization" not in request.headers:
                return error(401, "unauthorized", "missing API key")
            if request.headers["authorization"] != f"Bearer {self.api_key}":
                return error(403, "forbidden", "unknown API key")
        return self.route(request, path.removeprefix("/v1/collections"))

    def route(self, request: httpx.Request, rest: str) -> httpx.Response:
        method = request.method
        if rest == "" and method == "GET":
            return httpx.Response(200, json=CollectionList(collections=[self.info()]).model_dump())
        name, _, action = rest.removeprefix("/").partition("/")
        if name != "docs" and not (method == "POST" and action in ("load", "reload")):
            return error(404, "not_found", f"no collection named {name!r}", "name")
        if method == "GET" and action == "":
            return httpx.Response(200, json=self.info().model_dump())
        if method == "DELETE" and action == "":
            return httpx.Response(204)
        if method == "POST" and action in ("load", "reload"):
            path = json.loads(request.content)["path"]
            info = self.info(path).model_copy(update={"name": name})
            return httpx.Response(200, json=info.model_dump())
        if method == "POST" and action == "search":
            return self.search(request)
        if method == "POST" and action == "search/batch":
            return self.search_batch(request)
        return error(404, "not_found", "no such route")

    def search(self, request: httpx.Request) -> httpx.Response:
        body = SearchRequest.model_validate_json(request.content)
        if body.vector is not None:
            query = np.asarray([body.vector], dtype=np.float32)
        else:
            query = np.asarray(body.vectors, dtype=np.float32).mean(0, keepdims=True)
        if query.shape[1] != self.dim:
            return error(400, "dimension_mismatch", "wrong dimension", "vector")
        ids, scores = self.top_k(query, body.k)
        hits = [
            Hit(
                id=int(i),
                score=float(s),
                payload={"title": f"doc{i}"} if "payload" in body.include else None,
            )
            for i, s in zip(ids[0], scores[0], strict=True)
        ]
        response = SearchResponse(
            hits=hits, metric=self.metric, larger_is_better=self.larger_is_better, took_ms=0.5
        )  # type: ignore[arg-type]
        return httpx.Response(200, json=response.model_dump(exclude_none=True))

    def search_batch(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("content-type") == NPY_MEDIA_TYPE:
            queries = np.load(io.BytesIO(request.content), allow_pickle=False)
            k = int(request.url.params["k"])
            json.loads(request.url.params.get("params", "{}"))
        else:
            body = BatchSearchRequest.model_validate_json(request.content)
            queries, k = np.asarray(body.vectors, dtype=np.float32), body.k
        if queries.shape[1] != self.dim:
            return error(400, "dimension_mismatch", "wrong dimension", "vectors")
        if request.headers.get("accept") == NPZ_MEDIA_TYPE:
            ids, scores = self.padded(queries, k)
            buffer = io.BytesIO()
            np.savez(buffer, ids=ids, scores=scores)
            headers = {
                "content-type": NPZ_MEDIA_TYPE,
                "x-glint-metric": self.metric,
                "x-glint-took-ms": "1.25",
            }
            return httpx.Response(200, content=buffer.getvalue(), headers=headers)
        ids, scores = self.top_k(queries, k)
        response = BatchSearchResponse(
            ids=ids.tolist(),
            scores=scores.tolist(),
            metric=self.metric,  # type: ignore[arg-type]
            larger_is_better=self.larger_is_better,
            took_ms=1.25,
        )
        return httpx.Response(200, json=response.model_dump())


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def make_server() -> type[FakeServer]:
    return FakeServer


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> Client:
        options.setdefault("retries", FAST_RETRIES)
        client = Client("http://glint.test", transport=httpx.MockTransport(handler), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_async_client() -> Callable[..., AsyncClient]:
    """Async clients must be closed inside their event loop, so tests close them."""

    def make(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> AsyncClient:
        options.setdefault("retries", FAST_RETRIES)
        return AsyncClient("http://glint.test", transport=httpx.MockTransport(handler), **options)

    return make
