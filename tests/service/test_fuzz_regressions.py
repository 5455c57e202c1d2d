"""Findings of the schema fuzzer (test_schema_fuzz.py), each replayed deterministically.

Each was a 500 or a response breaking the published schema; each is now a 4xx with the error
envelope, or a schema that says what the server does.
"""

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
def server(tmp_path: Path, data, multivec, serve) -> str:
    build_index(data(200, DIM), "flat", "l2", ids=np.arange(200) + 1000).save(tmp_path / "docs")
    build_index(data(200, DIM, seed=1), "hnsw:m=8", "cos").save(tmp_path / "ann")
    spec = "muvera:k_sim=2,dim_proj=8,r_reps=4,tokens=f32,inner=(flat)"
    build_index(multivec(40, DIM, seed=2, mean_tokens=4), spec, "ip").save(tmp_path / "mv")
    return serve(index_dirs=[str(tmp_path / n) for n in ("docs", "ann", "mv")], max_k=50)


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_npy_body_sent_as_npz_is_refused(server: str) -> None:
    """Was a 500: ``np.load`` of a bare ``.npy`` returns an array, which the npz decoder
    used as a context manager (TypeError)."""
    response = httpx.post(
        f"{server}/v1/collections/mv/search/batch",
        content=_npy(np.zeros((0, DIM), np.float32)),
        headers={"content-type": "application/x-npz"},
    )
    assert "not an npz archive" in _error(response, 400, "invalid_body")["message"]


@pytest.mark.parametrize("key", ["k", "threads", "queries"])
@pytest.mark.parametrize("collection", ["docs", "ann", "mv"])
def test_search_parameters_named_like_search_arguments(
    server: str, key: str, collection: str
) -> None:
    """Was a 500: ``params`` went to ``index.search(queries, k, threads=..., **params)`` as
    keywords, so these names collided with its own arguments (TypeError)."""
    if collection == "mv":
        single = {"vectors": [[0.5] * DIM]}
        batch = {"token_sets": [[[0.5] * DIM]]}
    else:
        single = {"vector": [0.5] * DIM}
        batch = {"vectors": [[0.5] * DIM]}
    route = f"{server}/v1/collections/{collection}/search"
    for url, body in ((route, single), (f"{route}/batch", batch)):
        response = httpx.post(url, json={**body, "params": {key: 1}})
        error = _error(response, 400, "invalid_parameter")
        assert error["field"] == "params" and repr(key) in error["message"]
    if collection != "mv":
        response = httpx.post(
            f"{route}/batch",
            params={"params": json.dumps({key: 1})},
            content=_npy(np.full((1, DIM), 0.5, np.float32)),
            headers={"content-type": "application/x-npy"},
        )
        _error(response, 400, "invalid_parameter")


@pytest.mark.parametrize("value", [3.6163760893539446e22, 1e20, 3e38])
def test_scores_overflowing_float32_are_refused(server: str, value: float) -> None:
    """Was a 200 breaking the schema: finite float32 values whose squared distance overflows
    float32 gave inf/NaN scores, sent as ``"score": null`` where a number is declared."""
    vector = [value, 1e-7] * (DIM // 2)
    error = _error(
        httpx.post(f"{server}/v1/collections/docs/search", json={"vector": vector}),
        422,
        "invalid_request",
    )
    assert error["field"] == "vector" and "overflow" in error["message"]
    error = _error(
        httpx.post(f"{server}/v1/collections/docs/search/batch", json={"vectors": [vector]}),
        422,
        "invalid_request",
    )
    assert error["field"] == "vectors"
    ok = httpx.post(f"{server}/v1/collections/docs/search", json={"vector": [0.5] * DIM})
    assert ok.status_code == 200 and all(isinstance(h["score"], float) for h in ok.json()["hits"])


def test_values_overflowing_float32_are_named(server: str) -> None:
    """JSON numbers past float32's range are refused naming the value (the route cast them to
    float32 itself before, leaving the index only an inf, and a RuntimeWarning)."""
    vector = [0.0] * DIM
    vector[3] = 1e39
    response = httpx.post(f"{server}/v1/collections/docs/search", json={"vector": vector})
    error = _error(response, 400, "invalid_input")
    assert "column 3" in error["message"] and "overflows float32" in error["message"]


def test_batch_json_schema_is_published(server: str) -> None:
    """The batch route's JSON body referred to ``#/components/schemas/BatchSearchRequest``,
    which FastAPI never added to the components: the $ref dangled, so generated clients and
    the fuzzer could not build a JSON batch at all."""
    schema = httpx.get(f"{server}/openapi.json").json()
    body = schema["paths"]["/v1/collections/{name}/search/batch"]["post"]["requestBody"]
    json_schema = body["content"]["application/json"]["schema"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    components = schema["components"]["schemas"]
    for ref in refs(schema):
        assert ref.removeprefix("#/components/schemas/") in components, ref
    assert {"vectors", "token_sets", "k", "params"} <= set(json_schema["properties"])


@pytest.mark.parametrize(
    ("model", "one", "other"),
    [("SearchRequest", "vector", "vectors"), ("BatchSearchRequest", "vectors", "token_sets")],
)
def test_exactly_one_query_field_is_in_the_schema(
    server: str, model: str, one: str, other: str
) -> None:
    """``{}`` passed the published schema of a search body but was refused (422) by the
    model's "exactly one of" rule; the schema now states the rule as ``oneOf``."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # installed with schemathesis
    schema = httpx.get(f"{server}/openapi.json").json()
    route = {"SearchRequest": "search", "BatchSearchRequest": "search/batch"}[model]
    path = schema["paths"][f"/v1/collections/{{name}}/{route}"]["post"]
    subschema = path["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.validator_for({**subschema, "components": schema["components"]})
    row = [0.5] * DIM
    value = {"vector": row, "vectors": [row], "token_sets": [[row]]}
    assert validator.is_valid({one: value[one]})
    assert validator.is_valid({other: value[other]})
    assert validator.is_valid({one: value[one], other: None})
    assert not validator.is_valid({})
    assert not validator.is_valid({one: None, other: None})
    assert not validator.is_valid({one: value[one], other: value[other]})
