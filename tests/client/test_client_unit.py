"""Unit tests of the synchronous client against the in-process fake server (conftest.py)."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import httpx
import numpy as np
import pytest

import glint.client as gc
from glint.client import (
    APIError,
    AuthenticationError,
    BatchResult,
    Client,
    CollectionInfo,
    ConflictError,
    GlintClientError,
    Health,
    Hit,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestTimeout,
    ResponseDecodeError,
    RetryConfig,
    SearchResponse,
    ServerError,
    TransportError,
    UnavailableError,
)
from glint.client.errors import error_from_response

VECTOR = [0.5, -1.0, 2.0, 0.25]


def envelope(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, "field": field}}
    )


# -- construction ---------------------------------------------------------------------------


def test_public_namespace_is_flat_and_complete() -> None:
    for name in gc.__all__:
        assert hasattr(gc, name), name
    for name in (
        "Client", "AsyncClient", "BatchResult", "RetryConfig", "GlintClientError",
        "TransportError", "RequestTimeout", "APIError", "InvalidRequestError",
        "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ServerError",
        "UnavailableError", "Hit", "SearchResponse", "CollectionInfo", "Health",
    ):  # fmt: skip
        assert name in gc.__all__, name
    assert isinstance(gc.__version__, str) and gc.__version__


def test_error_tree() -> None:
    assert issubclass(RequestTimeout, TransportError)
    assert issubclass(TransportError, GlintClientError)
    assert issubclass(ResponseDecodeError, GlintClientError)
    for cls in (InvalidRequestError, AuthenticationError, PermissionDeniedError, NotFoundError,
                ConflictError, ServerError):  # fmt: skip
        assert issubclass(cls, APIError)
    assert issubclass(UnavailableError, ServerError)
    assert issubclass(APIError, GlintClientError)


def test_default_options_and_headers(server: Any, make_client: Any) -> None:
    client = make_client(server)
    assert client.base_url == "http://glint.test"
    client.health()
    request = server.calls[0]
    assert request.url == "http://glint.test/healthz"
    assert request.headers["user-agent"] == f"glint-client/{gc.__version__}"
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers
    assert request.extensions["timeout"] == {
        "connect": 2.0,
        "read": 10.0,
        "write": 10.0,
        "pool": 10.0,
    }


def test_bearer_header_iff_api_key(make_server: Any, make_client: Any) -> None:
    server = make_server(api_key="s3cret")
    client = make_client(server, api_key="s3cret", headers={"X-Trace": "abc"})
    assert client.info("docs").name == "docs"
    assert server.calls[-1].headers["authorization"] == "Bearer s3cret"
    assert server.calls[-1].headers["x-trace"] == "abc"
    assert "s3cret" not in repr(client)

    anonymous = make_client(server)
    with pytest.raises(AuthenticationError) as info:
        anonymous.info("docs")
    assert "authorization" not in server.calls[-1].headers
    assert info.value.status_code == 401 and info.value.code == "unauthorized"

    wrong = make_client(server, api_key="nope")
    with pytest.raises(PermissionDeniedError):
        wrong.collections()


def test_base_url_prefix_and_name_quoting(server: Any) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=server.info().model_dump())

    with Client("https://h.test:8443/glint/", transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "https://h.test:8443/glint"
        client.info("my coll/α?")
    assert seen[0].url.raw_path == b"/glint/v1/collections/my%20coll%2F%CE%B1%3F"


@pytest.mark.parametrize("base_url", ["ftp://x", "not a url", "http://", "http://h/?q=1"])
def test_bad_base_url(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        Client(base_url)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (5, {"connect": 2.0, "read": 5.0, "write": 5.0, "pool": 5.0}),
        (0.5, {"connect": 0.5, "read": 0.5, "write": 0.5, "pool": 0.5}),
        (httpx.Timeout(3.0, read=30.0), {"connect": 3.0, "read": 30.0, "write": 3.0, "pool": 3.0}),
    ],
)
def test_timeout_option(server: Any, make_client: Any, timeout: Any, expected: dict) -> None:
    make_client(server, timeout=timeout).health()
    assert server.calls[0].extensions["timeout"] == expected


def test_per_call_timeout(server: Any, make_client: Any) -> None:
    client = make_client(server)
    client.search_batch("docs", np.ones((1, 4)), timeout=60)
    assert server.calls[-1].extensions["timeout"]["read"] == 60.0
    client.load("docs", "/x", timeout=httpx.Timeout(120.0))
    assert server.calls[-1].extensions["timeout"]["read"] == 120.0


@pytest.mark.parametrize("options", [{"timeout": 0}, {"timeout": "1"}, {"retries": -1},
                                     {"retries": 1.5}, {"api_key": ""}])  # fmt: skip
def test_bad_options(options: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        Client(**options)


def test_context_manager_closes() -> None:
    with Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        assert not client.is_closed
    assert client.is_closed


# -- health and collections -----------------------------------------------------------------


def test_health_and_ready(server: Any, make_client: Any) -> None:
    client = make_client(server)
    assert client.health() == Health(status="ok", collections=1)
    assert client.ready() is True
    server.ready = False
    assert client.ready() is False
    assert len(server.calls) == 3  # a 503 from /readyz is an answer: not retried


def test_ready_raises_on_other_errors(make_client: Any) -> None:
    client = make_client(lambda r: envelope(500, "internal", "boom"))
    with pytest.raises(ServerError):
        client.ready()


def test_collections_and_info(server: Any, make_client: Any) -> None:
    client = make_client(server)
    collections = client.collections()
    assert collections == [server.info()]
    assert isinstance(collections[0], CollectionInfo)
    info = client.info("docs")
    assert (info.dim, info.count, info.metric, info.build) == (4, 3, "ip", {"seconds": 0.1})
    assert server.calls[-1].url.path == "/v1/collections/docs"
    with pytest.raises(NotFoundError) as excinfo:
        client.info("nope")
    assert excinfo.value.field == "name"


# -- search ---------------------------------------------------------------------------------


def test_search_single_vector(server: Any, make_client: Any) -> None:
    client = make_client(server)
    hits = client.search("docs", np.asarray(VECTOR, dtype=np.float32), k=2,
                         params={"nprobe": 8}, include=["payload"])  # fmt: skip
    request = server.calls[-1]
    assert request.method == "POST" and request.url.path == "/v1/collections/docs/search"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body == {"vector": VECTOR, "k": 2, "params": {"nprobe": 8}, "include": ["payload"]}
    expected_ids, expected_scores = server.top_k(np.asarray([VECTOR], np.float32), 2)
    assert [h.id for h in hits] == expected_ids[0].tolist()
    assert all(isinstance(h, Hit) for h in hits)
    assert [h.score for h in hits] == pytest.approx(expected_scores[0].tolist())
    assert hits[0].payload == {"title": f"doc{hits[0].id}"}


def test_search_defaults_and_plain_list(server: Any, make_client: Any) -> None:
    client = make_client(server)
    hits = client.search("docs", [1, 2, 3, 4])
    assert json.loads(server.calls[-1].content) == {
        "vector": [1.0, 2.0, 3.0, 4.0],
        "k": 10,
        "params": {},
        "include": [],
    }
    assert len(hits) == 3 and hits[0].payload is None


def test_search_token_matrix(server: Any, make_client: Any) -> None:
    client = make_client(server)
    tokens = np.arange(8, dtype=np.float64).reshape(2, 4) / 8
    client.search("docs", tokens, k=1)
    body = json.loads(server.calls[-1].content)
    assert "vector" not in body
    assert body["vectors"] == tokens.tolist()
    client.search("docs", [[1, 2, 3, 4]], k=1)  # a list of lists is a token matrix too
    assert json.loads(server.calls[-1].content)["vectors"] == [[1.0, 2.0, 3.0, 4.0]]


def test_search_response(make_server: Any, make_client: Any) -> None:
    server = make_server(metric="l2")
    response = make_client(server).search_response("docs", VECTOR, k=3)
    assert isinstance(response, SearchResponse)
    assert response.metric == "l2" and response.larger_is_better is False
    assert response.took_ms == 0.5
    scores = [h.score for h in response.hits]
    assert scores == sorted(scores)


def test_dimension_mismatch_maps_to_invalid_request(server: Any, make_client: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_client(server).search("docs", [1.0, 2.0])
    error = info.value
    assert (error.status_code, error.code, error.field) == (400, "dimension_mismatch", "vector")
    assert error.message == "wrong dimension"
    assert str(error) == "400 dimension_mismatch: wrong dimension (field: vector)"


# -- batch ----------------------------------------------------------------------------------


def test_search_batch_binary_request_and_result(server: Any, make_client: Any) -> None:
    client = make_client(server)
    queries = np.random.default_rng(0).standard_normal((5, 4))  # float64: sent as float32
    result = client.search_batch("docs", queries, k=2, params={"nprobe": 4, "exact": True})
    request = server.calls[-1]
    assert request.url.path == "/v1/collections/docs/search/batch"
    assert request.headers["content-type"] == "application/x-npy"
    assert request.headers["accept"] == "application/x-npz"
    assert request.url.params["k"] == "2"
    assert json.loads(request.url.params["params"]) == {"nprobe": 4, "exact": True}
    sent = np.load(io.BytesIO(request.content), allow_pickle=False)
    assert sent.dtype == np.float32 and sent.shape == (5, 4)
    np.testing.assert_array_equal(sent, queries.astype(np.float32))

    assert isinstance(result, BatchResult)
    assert result.ids.dtype == np.int64 and result.ids.shape == (5, 2)
    assert result.scores.dtype == np.float32 and result.scores.shape == (5, 2)
    expected_ids, expected_scores = server.top_k(queries.astype(np.float32), 2)
    np.testing.assert_array_equal(result.ids, expected_ids)
    np.testing.assert_array_equal(result.scores, expected_scores)
    assert (result.metric, result.took_ms, result.larger_is_better) == ("ip", 1.25, True)


def test_search_batch_binary_omits_empty_params(server: Any, make_client: Any) -> None:
    make_client(server).search_batch("docs", np.ones((1, 4), np.float32))
    assert dict(server.calls[-1].url.params) == {"k": "10"}


def test_search_batch_json_request(server: Any, make_client: Any) -> None:
    client = make_client(server)
    queries = np.arange(8, dtype=np.float32).reshape(2, 4)
    client.search_batch("docs", queries, k=2, params={"ef": 64}, binary=False)
    request = server.calls[-1]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert not request.url.params
    assert json.loads(request.content) == {"vectors": queries.tolist(), "k": 2,
                                           "params": {"ef": 64}}  # fmt: skip


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_binary_and_json_batches_are_identical(
    make_server: Any, make_client: Any, metric: str, k: int
) -> None:
    server = make_server(metric=metric)
    client = make_client(server)
    queries = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    binary = client.search_batch("docs", queries, k=k)
    plain = client.search_batch("docs", queries, k=k, binary=False)
    for result in (binary, plain):
        assert result.ids.dtype == np.int64 and result.ids.shape == (4, k)
        assert result.scores.dtype == np.float32 and result.scores.shape == (4, k)
    np.testing.assert_array_equal(binary.ids, plain.ids)
    np.testing.assert_array_equal(binary.scores, plain.scores)
    assert binary.metric == plain.metric == metric
    if k > 3:  # the collection holds 3 vectors: padded
        assert (plain.ids[:, 3:] == -1).all()
        fill = np.inf if metric == "l2" else -np.inf
        assert (plain.scores[:, 3:] == fill).all()


def test_binary_result_not_padded_by_server_is_padded(make_client: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        buffer = io.BytesIO()
        np.savez(buffer, ids=np.array([[2]], np.int32), scores=np.array([[0.5]], np.float64))
        return httpx.Response(200, content=buffer.getvalue(), headers={
            "content-type": "application/x-npz", "x-glint-metric": "l2", "x-glint-took-ms": "3",
        })  # fmt: skip

    result = make_client(handler).search_batch("docs", np.ones((1, 4)), k=3)
    np.testing.assert_array_equal(result.ids, [[2, -1, -1]])
    np.testing.assert_array_equal(result.scores, np.array([[0.5, np.inf, np.inf]], np.float32))
    assert result.ids.dtype == np.int64 and result.scores.dtype == np.float32


def test_binary_request_answered_with_json(server: Any, make_client: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        request.headers["accept"] = "application/json"  # a server that ignores Accept
        return server(request)

    result = make_client(handler).search_batch("docs", np.ones((2, 4)), k=5)
    assert result.ids.shape == (2, 5) and (result.ids[:, 3:] == -1).all()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"not an npz", headers={
            "content-type": "application/x-npz", "x-glint-metric": "ip",
            "x-glint-took-ms": "1"}),
        httpx.Response(200, content=b"PK", headers={"content-type": "application/x-npz"}),
        httpx.Response(200, text="{not json", headers={"content-type": "application/json"}),
        httpx.Response(200, json={"ids": [[1]], "scores": [[1.0]]}),
        httpx.Response(200, json={"ids": [[1, 2]], "scores": [[1.0]], "metric": "ip",
                                  "larger_is_better": True, "took_ms": 1}),
        httpx.Response(200, json={"ids": [[1]] * 3, "scores": [[1.0]] * 3, "metric": "ip",
                                  "larger_is_better": True, "took_ms": 1}),
    ],
)  # fmt: skip
def test_malformed_batch_answers(make_client: Any, response: httpx.Response) -> None:
    with pytest.raises(ResponseDecodeError):
        make_client(lambda r: response).search_batch("docs", np.ones((1, 4)), k=1)


def test_malformed_json_answer(make_client: Any) -> None:
    client = make_client(lambda r: httpx.Response(200, text="<html>"))
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        client.health()
    client = make_client(lambda r: httpx.Response(200, json={"status": "weird"}))
    with pytest.raises(ResponseDecodeError, match="Health"):
        client.health()


# -- admin ----------------------------------------------------------------------------------


def test_admin_calls(server: Any, make_client: Any) -> None:
    from pathlib import Path

    client = make_client(server, api_key=None)
    info = client.load("fresh", Path("/data/fresh"))
    assert (info.name, info.path) == ("fresh", "/data/fresh")
    request = server.calls[-1]
    assert (request.method, request.url.path) == ("POST", "/v1/collections/fresh/load")
    assert json.loads(request.content) == {"path": "/data/fresh"}
    client.reload("docs", "/data/docs2")
    assert server.calls[-1].url.path == "/v1/collections/docs/reload"
    assert client.unload("docs") is None
    assert (server.calls[-1].method, server.calls[-1].url.path) == (
        "DELETE",
        "/v1/collections/docs",
    )


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_json", InvalidRequestError),
        (400, "invalid_parameter", InvalidRequestError),
        (422, "invalid_request", InvalidRequestError),
        (413, "payload_too_large", InvalidRequestError),
        (415, "unsupported_media_type", InvalidRequestError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", PermissionDeniedError),
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (405, "method_not_allowed", APIError),
        (500, "internal", ServerError),
        (502, "bad_gateway", ServerError),
        (503, "unavailable", UnavailableError),
    ],
)
def test_status_maps_to_error_class(make_client: Any, status: int, code: str, cls: type) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return envelope(status, code, f"message {status}", "params.nprobe")

    client = make_client(handler, retries=0)
    with pytest.raises(cls) as info:
        client.search("docs", VECTOR)
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.code, error.message, error.field) == (
        status,
        code,
        f"message {status}",
        "params.nprobe",
    )
    assert error.response is not None and error.response.status_code == status
    assert len(calls) == 1


def test_non_json_502_maps_to_server_error(make_client: Any) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    client = make_client(lambda r: httpx.Response(502, text=html), retries=0)
    with pytest.raises(ServerError) as info:
        client.collections()
    assert type(info.value) is ServerError
    assert (info.value.status_code, info.value.code) == (502, "http_502")
    assert "Bad Gateway" in info.value.message and info.value.field is None


@pytest.mark.parametrize(
    ("response", "code", "message"),
    [
        (httpx.Response(503), "http_503", "Service Unavailable"),
        (httpx.Response(422, json={"detail": [{"loc": ["body", "k"]}]}), "http_422", "loc"),
        (httpx.Response(404, json={"detail": "Not Found"}), "http_404", "Not Found"),
        (httpx.Response(400, json={"error": {"code": "x"}}), "x", "Bad Request"),
        (httpx.Response(500, json=[1, 2]), "http_500", "[1,2]"),
    ],
)
def test_error_from_odd_bodies(response: httpx.Response, code: str, message: str) -> None:
    response.request = httpx.Request("GET", "http://h/")
    error = error_from_response(response)
    assert error.code == code and message in error.message


# -- retries --------------------------------------------------------------------------------


def flaky(server: Any, *failures: Any) -> Any:
    server.failures.extend(failures)
    return server


def test_retry_503_twice_then_success(server: Any, make_client: Any) -> None:
    flaky(server, envelope(503, "unavailable", "loading"), httpx.Response(503))
    hits = make_client(server).search("docs", VECTOR, k=1)
    assert len(hits) == 1
    assert len(server.calls) == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_retry_gives_up_after_max_retries(server: Any, make_client: Any, status: int) -> None:
    flaky(server, *[envelope(status, "unavailable", "down")] * 5)
    with pytest.raises(ServerError) as info:
        make_client(server).search_batch("docs", np.ones((1, 4)))
    assert info.value.status_code == status
    assert len(server.calls) == 3


def test_retry_count_option(server: Any, make_client: Any) -> None:
    flaky(server, *[httpx.Response(503)] * 10)
    with pytest.raises(UnavailableError):
        make_client(server, retries=RetryConfig(max_retries=4, backoff_base=0)).info("docs")
    assert len(server.calls) == 5


def test_no_retry_on_500_or_4xx(server: Any, make_client: Any) -> None:
    flaky(server, envelope(500, "internal", "bug"), envelope(400, "invalid_parameter", "x"))
    client = make_client(server)
    with pytest.raises(ServerError):
        client.info("docs")
    with pytest.raises(InvalidRequestError):
        client.info("docs")
    assert len(server.calls) == 2


@pytest.mark.parametrize("call", ["load", "reload", "unload"])
def test_admin_calls_are_not_retried(server: Any, make_client: Any, call: str) -> None:
    flaky(server, *[envelope(503, "unavailable", "busy")] * 3)
    client = make_client(server)
    args = ("docs",) if call == "unload" else ("docs", "/data/docs")
    with pytest.raises(UnavailableError):
        getattr(client, call)(*args)
    assert len(server.calls) == 1


def test_connect_error_retried_then_transport_error(server: Any, make_client: Any) -> None:
    flaky(server, *[httpx.ConnectError] * 5)
    with pytest.raises(TransportError) as info:
        make_client(server).health()
    assert type(info.value) is TransportError
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "GET http://glint.test/healthz" in str(info.value)
    assert len(server.calls) == 3


def test_connect_error_then_success(server: Any, make_client: Any) -> None:
    flaky(server, httpx.ConnectError, httpx.ConnectTimeout)
    assert make_client(server).collections()[0].name == "docs"
    assert len(server.calls) == 3


def test_connect_error_retried_for_admin_calls(server: Any, make_client: Any) -> None:
    flaky(server, httpx.ConnectError)  # nothing reached the server: safe to retry
    assert make_client(server).load("docs", "/d").path == "/d"
    assert len(server.calls) == 2


def test_read_timeout_retried_for_searches_only(server: Any, make_client: Any) -> None:
    client = make_client(server)
    flaky(server, httpx.ReadTimeout)
    assert len(client.search("docs", VECTOR, k=2)) == 2
    assert len(server.calls) == 2

    server.calls.clear()
    flaky(server, httpx.ReadTimeout, httpx.ReadTimeout)
    with pytest.raises(RequestTimeout):
        client.reload("docs", "/d")
    assert len(server.calls) == 1


def test_read_error_not_retried(server: Any, make_client: Any) -> None:
    flaky(server, httpx.ReadError)
    with pytest.raises(TransportError):
        make_client(server).health()
    assert len(server.calls) == 1


def test_backoff_delays(server: Any, make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from glint.client import _client

    delays: list[float] = []
    monkeypatch.setattr(_client.time, "sleep", delays.append)
    policy = RetryConfig(max_retries=3, backoff_base=0.1, backoff_max=0.25, jitter=False)
    flaky(server, *[httpx.Response(503)] * 3)
    make_client(server, retries=policy).health()
    assert delays == pytest.approx([0.1, 0.2, 0.25])

    delays.clear()
    flaky(server, httpx.Response(503, headers={"Retry-After": "0.05"}),
          httpx.Response(503, headers={"Retry-After": "30"}))  # fmt: skip
    make_client(server, retries=policy).health()
    assert delays == pytest.approx([0.05, 0.25])


def test_retry_config() -> None:
    policy = RetryConfig(backoff_base=1.0, backoff_max=3.0)
    for retry in range(10):
        assert 0 <= policy.backoff(retry) <= 3.0
    assert RetryConfig(jitter=False).backoff(1000) == 2.0
    with pytest.raises(ValueError, match="backoff_base must be a finite number"):
        RetryConfig(backoff_base=math.nan)
    assert Client(retries=5).retries.max_retries == 5


# -- validation before sending --------------------------------------------------------------


@pytest.fixture
def untouched(make_client: Any) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")

    return make_client(handler)


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ([1.0, math.nan, 2.0], "finite"),
        (np.array([1.0, np.inf]), "finite"),
        ([1e39, 0.0], "finite"),
        ([[1.0, 2.0], [math.nan, 0.0]], "finite"),
        (np.zeros((2, 2, 2)), "3-D"),
        (np.float32(1.0), "0-D"),
        ([], "empty"),
        (np.zeros((0, 4)), "empty"),
        ([[1.0, 2.0], [3.0]], "rectangular"),
        (["a", "b"], "real numbers"),
        ([1.0, None], "real numbers"),
        ([True, False], "real numbers"),
        ("1,2,3", "array of numbers"),
    ],
)
def test_bad_search_query(untouched: Any, query: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        untouched.search("docs", query)


@pytest.mark.parametrize("k", [0, -1, True, 2.0, "3", None])
def test_bad_k(untouched: Any, k: Any) -> None:
    with pytest.raises(ValueError, match="k must be"):
        untouched.search("docs", VECTOR, k=k)
    with pytest.raises(ValueError, match="k must be"):
        untouched.search_batch("docs", np.ones((1, 4)), k=k)


def test_numpy_integer_k_is_fine(server: Any, make_client: Any) -> None:
    make_client(server).search("docs", VECTOR, k=np.int64(2))
    assert json.loads(server.calls[-1].content)["k"] == 2


@pytest.mark.parametrize(
    ("queries", "match"),
    [
        (np.ones(4), "reshape"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.zeros((0, 4)), "at least one"),
        (np.array([[1.0, np.nan]]), r"finite float32 values; got nan at index \[0, 1\]"),
    ],
)
def test_bad_batch(untouched: Any, queries: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        untouched.search_batch("docs", queries)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "collection name"),
        ({"name": ".."}, "not allowed"),
        ({"name": 3}, "collection name"),
        ({"params": {"x": object()}}, "JSON"),
        ({"params": {"x": math.nan}}, "JSON"),
        ({"params": [1]}, "mapping"),
        ({"params": {1: 2}}, "keys"),
        ({"include": ["vectors"]}, "include"),
    ],
)
def test_bad_search_arguments(untouched: Any, kwargs: dict, match: str) -> None:
    args = {"name": "docs", "query": VECTOR, **kwargs}
    with pytest.raises(ValueError, match=match):
        untouched.search(**args)


def test_bad_admin_path(untouched: Any) -> None:
    with pytest.raises(ValueError, match="path"):
        untouched.load("docs", "")
    with pytest.raises(ValueError, match="path"):
        untouched.reload("docs", 42)


@pytest.mark.parametrize("params", [{"x": {1: 2}}, {"big": 1 << 70}, {"nan": float("nan")}])
def test_params_the_wire_cannot_carry_are_refused_before_sending(params: dict) -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(ValueError, match="params"):
        client.search("docs", [0.0, 1.0], params=params)
