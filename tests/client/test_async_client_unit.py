"""Unit tests of :class:`AsyncClient`: the key behaviours of the sync tests, awaited.

pytest-asyncio is not installed: each test runs its coroutine with :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from glint.client import (
    AsyncClient,
    AuthenticationError,
    BatchResult,
    CollectionInfo,
    Health,
    InvalidRequestError,
    NotFoundError,
    RequestTimeout,
    ServerError,
    TransportError,
    UnavailableError,
)

T = TypeVar("T")
VECTOR = [0.5, -1.0, 2.0, 0.25]


def run(client: AsyncClient, use: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with client:
            return await use(client)

    return asyncio.run(main())


def envelope(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, "field": field}}
    )


def test_health_ready_collections(server: Any, make_async_client: Any) -> None:
    async def use(client: AsyncClient) -> None:
        assert await client.health() == Health(status="ok", collections=1)
        assert await client.ready() is True
        server.ready = False
        assert await client.ready() is False
        collections = await client.collections()
        assert isinstance(collections[0], CollectionInfo)
        assert (await client.info("docs")).dim == 4
        with pytest.raises(NotFoundError):
            await client.info("missing")

    client = make_async_client(server)
    run(client, use)
    assert client.is_closed


def test_auth_header(make_server: Any, make_async_client: Any) -> None:
    server = make_server(api_key="k1")
    run(make_async_client(server, api_key="k1"), lambda c: c.collections())
    assert server.calls[-1].headers["authorization"] == "Bearer k1"
    with pytest.raises(AuthenticationError):
        run(make_async_client(server), lambda c: c.collections())
    assert "authorization" not in server.calls[-1].headers


def test_search(server: Any, make_async_client: Any) -> None:
    async def use(client: AsyncClient) -> Any:
        hits = await client.search("docs", VECTOR, k=2, include=["payload"])
        response = await client.search_response("docs", [[1, 2, 3, 4]], k=1)
        return hits, response

    hits, response = run(make_async_client(server), use)
    assert len(hits) == 2 and hits[0].payload == {"title": f"doc{hits[0].id}"}
    assert json.loads(server.calls[0].content)["vector"] == VECTOR
    assert json.loads(server.calls[1].content)["vectors"] == [[1.0, 2.0, 3.0, 4.0]]
    assert response.metric == "ip" and len(response.hits) == 1


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_search_batch_binary_and_json(
    make_server: Any, make_async_client: Any, metric: str
) -> None:
    server = make_server(metric=metric)
    queries = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)

    async def use(client: AsyncClient) -> tuple[BatchResult, BatchResult]:
        binary = await client.search_batch("docs", queries, k=5, params={"nprobe": 2})
        plain = await client.search_batch("docs", queries, k=5, binary=False)
        return binary, plain

    binary, plain = run(make_async_client(server), use)
    request = server.calls[0]
    assert request.headers["content-type"] == "application/x-npy"
    assert request.url.params["k"] == "5"
    assert json.loads(request.url.params["params"]) == {"nprobe": 2}
    np.testing.assert_array_equal(np.load(io.BytesIO(request.content)), queries)
    for result in (binary, plain):
        assert result.ids.dtype == np.int64 and result.ids.shape == (3, 5)
        assert result.scores.dtype == np.float32 and result.scores.shape == (3, 5)
    np.testing.assert_array_equal(binary.ids, plain.ids)
    np.testing.assert_array_equal(binary.scores, plain.scores)
    assert (plain.ids[:, 3:] == -1).all()


def test_error_mapping(make_async_client: Any) -> None:
    handler = lambda r: envelope(400, "dimension_mismatch", "wrong", "vector")  # noqa: E731
    with pytest.raises(InvalidRequestError) as info:
        run(make_async_client(handler), lambda c: c.search("docs", VECTOR))
    assert (info.value.code, info.value.message, info.value.field) == (
        "dimension_mismatch",
        "wrong",
        "vector",
    )
    html = lambda r: httpx.Response(502, text="<h1>Bad Gateway</h1>")  # noqa: E731
    with pytest.raises(ServerError) as info2:
        run(make_async_client(html, retries=0), lambda c: c.health())
    assert info2.value.code == "http_502"


def test_retry_503_twice_then_success(server: Any, make_async_client: Any) -> None:
    server.failures.extend([envelope(503, "unavailable", "loading"), httpx.Response(503)])
    hits = run(make_async_client(server), lambda c: c.search("docs", VECTOR, k=1))
    assert len(hits) == 1
    assert len(server.calls) == 3


def test_admin_not_retried(server: Any, make_async_client: Any) -> None:
    server.failures.extend([httpx.Response(503)] * 3)
    with pytest.raises(UnavailableError):
        run(make_async_client(server), lambda c: c.load("docs", "/d"))
    assert len(server.calls) == 1


def test_admin_calls(server: Any, make_async_client: Any) -> None:
    async def use(client: AsyncClient) -> None:
        assert (await client.load("new", "/d/new")).name == "new"
        assert (await client.reload("docs", "/d/docs")).path == "/d/docs"
        assert await client.unload("docs") is None

    run(make_async_client(server), use)
    assert [(r.method, r.url.path) for r in server.calls] == [
        ("POST", "/v1/collections/new/load"),
        ("POST", "/v1/collections/docs/reload"),
        ("DELETE", "/v1/collections/docs"),
    ]


def test_connect_error_retried_then_transport_error(server: Any, make_async_client: Any) -> None:
    server.failures.extend([httpx.ConnectError] * 5)
    with pytest.raises(TransportError) as info:
        run(make_async_client(server), lambda c: c.health())
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(server.calls) == 3


def test_read_timeout(server: Any, make_async_client: Any) -> None:
    server.failures.extend([httpx.ReadTimeout] * 5)
    with pytest.raises(RequestTimeout):
        run(make_async_client(server), lambda c: c.info("docs"))
    assert len(server.calls) == 3
    server.calls.clear()
    with pytest.raises(RequestTimeout):
        run(make_async_client(server), lambda c: c.unload("docs"))
    assert len(server.calls) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.search("docs", [1.0, math.nan]), "finite float32 values; got nan"),
        (lambda c: c.search("docs", np.zeros((2, 2, 2))), "got a 3-D array"),
        (lambda c: c.search("docs", VECTOR, k=0), "k must be >= 1"),
        (lambda c: c.search_batch("docs", np.ones(4)), r"must be a 2-D \[nq, dim\] matrix"),
        (lambda c: c.search_batch("docs", np.ones((1, 4)), k=0), "k must be >= 1"),
        (lambda c: c.info(""), "collection name must be a non-empty string"),
    ],
)
def test_validation_before_sending(make_async_client: Any, call: Any, message: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(ValueError, match=message):
        run(make_async_client(handler), call)
    assert calls == []
