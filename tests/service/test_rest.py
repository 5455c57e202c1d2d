"""REST behaviour against a real server: results, and bad input answered 4xx with the envelope."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from glint.index import build_index

DIM = 16


@pytest.fixture
def server(tmp_path: Path, data, serve) -> tuple[str, np.ndarray]:
    base = data(500, DIM)
    build_index(
        base, "flat", "l2", ids=np.arange(500) + 1000, payloads=[{"n": i} for i in range(500)]
    ).save(tmp_path / "docs")
    url = serve(index_dirs=[str(tmp_path / "docs")], max_k=50, max_batch=100, max_body_bytes=65536)
    return url, base


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_health_ready_collections(server) -> None:
    url, _ = server
    health = {"status": "ok", "collections": 1, "loading": [], "failed": {}}
    assert httpx.get(f"{url}/healthz").json() == health
    assert httpx.get(f"{url}/readyz").status_code == 200
    info = httpx.get(f"{url}/v1/collections/docs").json()
    assert (info["kind"], info["metric"], info["dim"], info["count"]) == ("flat", "l2", DIM, 500)
    assert info["memory_bytes"] >= 500 * DIM * 4 and info["has_payloads"] is True
    assert [c["name"] for c in httpx.get(f"{url}/v1/collections").json()["collections"]] == ["docs"]


def test_search_returns_exact_hits_with_payloads(server) -> None:
    url, base = server
    body = {"vector": base[7].tolist(), "k": 3, "include": ["payload"]}
    answer = httpx.post(f"{url}/v1/collections/docs/search", json=body).json()
    assert answer["metric"] == "l2" and answer["larger_is_better"] is False
    first = answer["hits"][0]
    assert first["id"] == 1007 and first["score"] == pytest.approx(0.0, abs=1e-3)
    assert first["payload"] == {"n": 7}
    assert answer["hits"][1]["score"] >= first["score"]


def test_batch_json_and_binary_agree(server) -> None:
    url, base = server
    queries = base[:20]
    as_json = httpx.post(
        f"{url}/v1/collections/docs/search/batch", json={"vectors": queries.tolist(), "k": 5}
    ).json()
    buf = io.BytesIO()
    np.save(buf, queries)
    binary = httpx.post(
        f"{url}/v1/collections/docs/search/batch",
        params={"k": 5},
        content=buf.getvalue(),
        headers={"content-type": "application/x-npy", "accept": "application/x-npz"},
    )
    assert binary.headers["content-type"] == "application/x-npz"
    assert binary.headers["x-glint-metric"] == "l2"
    arrays = np.load(io.BytesIO(binary.content))
    assert arrays["ids"].dtype == np.int64 and arrays["scores"].dtype == np.float32
    np.testing.assert_array_equal(arrays["ids"], np.array(as_json["ids"]))
    assert (arrays["ids"][:, 0] == np.arange(20) + 1000).all()


def test_metrics_exposition(server) -> None:
    url, base = server
    httpx.post(f"{url}/v1/collections/docs/search", json={"vector": base[0].tolist()})
    text = httpx.get(f"{url}/metrics").text
    assert (
        'glint_requests_total{collection="docs",method="POST",route="/v1/collections/{name}/search",status="200"} 1.0'
        in text
    )
    assert 'glint_index_vectors{collection="docs"} 500.0' in text
    assert 'glint_queries_total{collection="docs"} 1.0' in text


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"vector": [0.0] * (DIM - 1)}, 400, "dimension_mismatch", "vector"),
        ({"vector": [0.0] * DIM, "k": 0}, 422, "invalid_request", "k"),
        ({"vector": [0.0] * DIM, "k": -3}, 422, "invalid_request", "k"),
        ({"vector": [0.0] * DIM, "k": 51}, 422, "invalid_request", "k"),
        ({"vector": [0.0] * DIM, "k": "ten"}, 422, "invalid_request", "k"),
        ({"vector": ["a"] * DIM}, 422, "invalid_request", "vector.0"),
        ({}, 422, "invalid_request", None),
        ({"vector": [0.0] * DIM, "vectors": [[0.0] * DIM]}, 422, "invalid_request", None),
        ({"vectors": [[0.0] * DIM]}, 422, "invalid_request", "vectors"),
        ({"vector": [0.0] * DIM, "params": {"ef_search": 5}}, 400, "invalid_parameter", "params"),
        ({"vector": [0.0] * DIM, "include": ["secrets"]}, 422, "invalid_request", "include.0"),
        ({"vector": [0.0] * DIM, "surprise": 1}, 422, "invalid_request", "surprise"),
        ({"vector": []}, 400, "invalid_input", "vector"),
    ],
)
def test_bad_search_bodies(server, body: dict, status: int, code: str, field: str | None) -> None:
    url, _ = server
    error = _error(httpx.post(f"{url}/v1/collections/docs/search", json=body), status, code)
    assert error["field"] == field


def test_non_finite_vector_is_refused(server) -> None:
    url, _ = server
    raw = '{"vector": [NaN' + ", 0.0" * (DIM - 1) + "]}"
    response = httpx.post(
        f"{url}/v1/collections/docs/search",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert "error" in response.json()


def test_malformed_json(server) -> None:
    url, _ = server
    for path in ("search", "search/batch"):
        response = httpx.post(
            f"{url}/v1/collections/docs/{path}",
            content=b'{"vector": [1, 2',
            headers={"content-type": "application/json"},
        )
        assert response.status_code in (400, 422)
        assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")


def test_unknown_collection_and_route(server) -> None:
    url, _ = server
    error = _error(
        httpx.post(f"{url}/v1/collections/nope/search", json={"vector": [0.0] * DIM}),
        404,
        "not_found",
    )
    assert "'nope' does not exist (loaded: docs)" in error["message"]
    _error(httpx.get(f"{url}/v1/collections/nope"), 404, "not_found")
    _error(httpx.get(f"{url}/v2/whatever"), 404, "not_found")
    _error(httpx.delete(f"{url}/v1/collections"), 405, "method_not_allowed")


def test_bad_batch_bodies(server) -> None:
    url, base = server
    route = f"{url}/v1/collections/docs/search/batch"
    npy = {"content-type": "application/x-npy"}
    _error(
        httpx.post(route, content=b"hello", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    _error(httpx.post(route, content=b"not an array", headers=npy), 400, "invalid_body")
    buf = io.BytesIO()
    np.save(buf, base[:3])
    _error(httpx.post(route, content=buf.getvalue()[:-10], headers=npy), 400, "invalid_body")
    _error(
        httpx.post(route, content=buf.getvalue(), headers=npy, params={"k": 0}),
        422,
        "invalid_request",
    )
    _error(
        httpx.post(route, content=buf.getvalue(), headers=npy, params={"params": "{oops"}),
        400,
        "invalid_parameter",
    )
    one_d = io.BytesIO()
    np.save(one_d, base[0])
    _error(httpx.post(route, content=one_d.getvalue(), headers=npy), 400, "invalid_body")
    wrong_dim = io.BytesIO()
    np.save(wrong_dim, base[:2, :5])
    _error(httpx.post(route, content=wrong_dim.getvalue(), headers=npy), 400, "dimension_mismatch")
    too_many = io.BytesIO()
    np.save(too_many, np.zeros((101, DIM), np.float32))
    _error(httpx.post(route, content=too_many.getvalue(), headers=npy), 413, "payload_too_large")
    huge = b"\x93NUMPY" + b"\0" * 70000
    _error(httpx.post(route, content=huge, headers=npy), 413, "payload_too_large")
    _error(httpx.post(route, json={"vectors": [[0.0] * DIM, [0.0]]}), 422, "invalid_request")
    _error(httpx.post(route, json={"vectors": []}), 422, "invalid_request")


def test_openapi_schema_lists_the_routes(server) -> None:
    url, _ = server
    schema = httpx.get(f"{url}/openapi.json").json()
    for path in (
        "/v1/collections",
        "/v1/collections/{name}/search",
        "/v1/collections/{name}/search/batch",
        "/healthz",
        "/readyz",
    ):
        assert path in schema["paths"]
    batch = schema["paths"]["/v1/collections/{name}/search/batch"]["post"]["requestBody"]
    assert set(batch["content"]) == {"application/json", "application/x-npy", "application/x-npz"}


def test_server_still_answers_after_bad_requests(server) -> None:
    url, base = server
    for raw in (b"\xff\xfe", b"[]", b"null", json.dumps({"vector": None}).encode()):
        response = httpx.post(
            f"{url}/v1/collections/docs/search",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (raw, response.text)
    ok = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": base[1].tolist(), "k": 1})
    assert ok.json()["hits"][0]["id"] == 1001


def test_body_limit_applies_to_every_route(server) -> None:
    url, _ = server
    big = b'{"vector": [' + b"0.0," * 20000 + b"0.0]}"  # > 65,536 bytes
    declared = httpx.post(
        f"{url}/v1/collections/docs/search",
        content=big,
        headers={"content-type": "application/json"},
    )
    _error(declared, 413, "payload_too_large")

    def chunks():  # no Content-Length: the body streams in chunks
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = httpx.post(
        f"{url}/v1/collections/docs/search",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    _error(streamed, 413, "payload_too_large")
    ok = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": [0.0] * DIM, "k": 1})
    assert ok.status_code == 200
