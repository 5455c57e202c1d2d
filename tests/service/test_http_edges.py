"""HTTP answers at the edges (issue 15, items 10b and 10d): every error that reaches the app is
the JSON envelope, the probes answer HEAD, and an all-zero query under ``cos`` is refused.

Not helpable from the app: a request the HTTP parser itself refuses (a malformed
``Content-Length``, two of them, control characters in a header, an unknown method) is
answered by uvicorn (h11 or httptools) before any of glint runs, as ``400 text/plain``
"Invalid HTTP request received."."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from glint.index import build_index

DIM = 8


@pytest.fixture
def server(tmp_path: Path, data, serve) -> str:
    build_index(data(200, DIM), "hnsw:m=8", "cos").save(tmp_path / "cos")
    return str(serve(index_dirs=[str(tmp_path / "cos")]))


def test_probes_answer_head(server: str) -> None:
    """Was 405: FastAPI routes take only the methods they declare, and some load balancers
    probe with HEAD."""
    for probe in ("/healthz", "/readyz"):
        response = httpx.head(server + probe)
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/readyz", 405, "method_not_allowed"),
        ("OPTIONS", "/v1/collections", 405, "method_not_allowed"),
        ("TRACE", "/healthz", 405, "method_not_allowed"),
        ("GET", "/nowhere", 404, "not_found"),
        ("HEAD", "/nowhere", 404, "not_found"),
    ],
)
def test_framework_errors_are_envelopes(
    server: str, method: str, path: str, status: int, code: str
) -> None:
    response = httpx.request(method, server + path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    if method != "HEAD":
        assert response.json()["error"]["code"] == code


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_zero_query_under_cos_is_refused(server: str, data) -> None:
    """Was 200 with arbitrary hits: every cosine ties at 0 against a zero vector."""
    single = httpx.post(f"{server}/v1/collections/cos/search", json={"vector": [0.0] * DIM})
    assert single.status_code == 400, single.text
    error = single.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == "vector"
    assert error["message"].startswith(
        "queries: row 0 is all zeros: the cos metric compares directions"
    )
    queries = data(3, DIM)
    queries[1] = 0.0
    batch_url = f"{server}/v1/collections/cos/search/batch"
    for response in (
        httpx.post(batch_url, json={"vectors": queries.tolist()}),
        httpx.post(batch_url, content=_npy(queries), headers={"content-type": "application/x-npy"}),
    ):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["message"].startswith("queries: row 1 is all zeros")
        assert error["field"] == "vectors"
    ok = httpx.post(f"{server}/v1/collections/cos/search", json={"vector": [0.5] * DIM})
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 10
