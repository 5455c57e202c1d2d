"""Filtered search through every transport against a real server: the same ids and scores as
``index.search(..., filter=...)`` in process, and bad filters answered 4xx ``invalid_filter``
with the envelope naming the place.

One server for the module serves a flat (``docs``, l2) and an hnsw (``ann``, cos) collection
built with payloads and payload indexes on the same points; each filter is sent as a single
JSON query, a JSON batch and a binary batch (``filter`` in the query string), over raw HTTP
and through the sync and async clients.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from glint.client import (
    AsyncClient,
    Client,
    FieldCondition,
    Filter,
    InvalidRequestError,
    IsEmptyCondition,
    IsEmptyKey,
    Match,
    Range,
)
from glint.index import Index, build_index, load_index

from testkit import clustered, serving

DIM = 16
N = 1500
K = 10
IDS = np.arange(N, dtype=np.int64) * 3 + 7  # external ids that are not row numbers
SPECS = {"docs": ("flat", "l2"), "ann": ("hnsw:m=12", "cos")}
PAYLOAD_INDEX = {
    "lang": "keyword",
    "year": "integer",
    "price": "float",
    "draft": "bool",
    "tags": "keyword",
}


def _payload(i: int) -> dict[str, Any]:
    tags = [] if i % 4 == 0 else ["a", "b"][: 1 + i % 2]
    return {
        "lang": ["en", "de", "fr"][i % 3],
        "year": 2015 + i % 10,
        "price": (i % 50) / 2,
        "draft": i % 7 == 0,
        "tags": tags,
    }


FILTERS: dict[str, Any] = {
    "match value": {"must": [{"key": "lang", "match": {"value": "en"}}]},
    "range and must_not any": {
        "must": [{"key": "year", "range": {"gte": 2018, "lt": 2021}}],
        "must_not": [{"key": "lang", "match": {"any": ["fr"]}}],
    },
    "should of bool and float range": {
        "should": [
            {"key": "draft", "match": {"value": True}},
            {"key": "price", "range": {"lte": 2.0}},
        ]
    },
    "except and is_empty": {
        "must": [
            {"key": "lang", "match": {"except": ["en", "de"]}},
            {"is_empty": {"key": "tags"}},
        ]
    },
    "nested, min_should": {
        "must": [
            {
                "should": [
                    {"key": "year", "match": {"value": 2016}},
                    {"key": "tags", "match": {"value": "b"}},
                    {"key": "draft", "match": {"value": False}},
                ],
                "min_should": 2,
            }
        ]
    },
    # fewer points than k pass: the answers are padded (batches) or short (single queries)
    "has_id, fewer than k": {"must": [{"has_id": [int(i) for i in IDS[[3, 70, 901, 1400]]]}]},
    "none pass": {"must": [{"key": "lang", "match": {"value": "xx"}}]},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Index[Any]]]]:
    """The server's URL and, per collection, the same index loaded in process."""
    from glint.service.app import create_app
    from glint.service.settings import Settings

    root = tmp_path_factory.mktemp("filtered")
    base = clustered(N, DIM, seed=11)
    payloads = [_payload(i) for i in range(N)]
    for name, (spec, metric) in SPECS.items():
        index = build_index(
            base, spec, metric, ids=IDS, payloads=payloads, payload_index=PAYLOAD_INDEX
        )
        index.save(root / name)
    local = {name: load_index(root / name) for name in SPECS}
    for index in local.values():
        _warm(index)
    settings = Settings(
        index_dirs=[str(root / name) for name in SPECS], search_workers=2, batch_threads=1
    )
    with serving(create_app(settings)) as url:
        yield url, local
    for index in local.values():
        index.close()


def _warm(index: Index[Any]) -> None:
    """Compile the kernels of plain and filtered searches here, where the server thread will
    find them: a first compilation can take longer than the server's readiness bound or the
    request timeout on a loaded machine."""
    index.warm()
    q = clustered(2, DIM, seed=13)
    for flt in (None, FILTERS["match value"], FILTERS["has_id, fewer than k"]):
        index.search(q, K, filter=flt)
        index.search(q[0], K, filter=flt)
        index.search(q.astype(np.float64), K, filter=flt)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(6, DIM, seed=12)


def _expected(
    index: Index[Any],
    queries: np.ndarray,
    flt: Any,
    *,
    one_by_one: bool = False,
    as_json: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The in-process answer to what a request sends: the batch ``queries``, or each query
    alone (``one_by_one``: an exact search scores a few queries by other loops than a batch,
    and the last bits of a score may differ); as float64 for a JSON body (the server parses
    JSON numbers as float64, and ``cos`` normalises them so, before float32)."""
    q = queries.astype(np.float64) if as_json else queries
    if not one_by_one:
        result = index.search(q, K, filter=flt)
        return result.ids, result.scores
    results = [index.search(row, K, filter=flt) for row in q]
    return np.vstack([r.ids for r in results]), np.vstack([r.scores for r in results])


def _npy(matrix: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, matrix)
    return buf.getvalue()


def _assert_rows(ids: Any, scores: Any, want_ids: np.ndarray, want_scores: np.ndarray) -> None:
    """Rows as answered (JSON rows drop the -1 padding) against the in-process answer."""
    for row, (got_ids, got_scores) in enumerate(zip(ids, scores, strict=True)):
        keep = want_ids[row] >= 0
        np.testing.assert_array_equal(
            np.asarray(got_ids, np.int64)[: keep.sum()], want_ids[row][keep]
        )
        np.testing.assert_array_equal(
            np.asarray(got_scores, np.float32)[: keep.sum()], want_scores[row][keep]
        )
        assert (np.asarray(got_ids)[keep.sum() :] == -1).all()


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("label", sorted(FILTERS))
def test_rest_matches_in_process(served, queries: np.ndarray, name: str, label: str) -> None:
    url, local = served
    index, flt = local[name], FILTERS[label]
    want_ids, want_scores = _expected(index, queries, flt)
    if label == "none pass":
        assert (want_ids == -1).all()
    elif label.startswith("has_id"):
        assert ((want_ids >= 0).sum(axis=1) == 4).all()
    else:
        assert (want_ids >= 0).all()
    route = f"{url}/v1/collections/{name}/search"

    single = [
        httpx.post(route, json={"vector": q.tolist(), "k": K, "filter": flt}).json()["hits"]
        for q in queries
    ]
    _assert_rows(
        [[h["id"] for h in hits] for hits in single],
        [[h["score"] for h in hits] for hits in single],
        *_expected(index, queries, flt, one_by_one=True, as_json=True),
    )

    batch = httpx.post(
        f"{route}/batch", json={"vectors": queries.tolist(), "k": K, "filter": flt}
    ).json()
    _assert_rows(batch["ids"], batch["scores"], *_expected(index, queries, flt, as_json=True))

    binary = httpx.post(
        f"{route}/batch",
        params={"k": K, "filter": json.dumps(flt)},
        content=_npy(queries),
        headers={"content-type": "application/x-npy", "accept": "application/x-npz"},
    )
    assert binary.status_code == 200, binary.text
    arrays = np.load(io.BytesIO(binary.content))
    np.testing.assert_array_equal(arrays["ids"], want_ids)
    np.testing.assert_array_equal(arrays["scores"], want_scores)


TYPED = Filter(
    must=[
        FieldCondition(key="year", range=Range(gte=2017)),
        Filter(should=[IsEmptyCondition(is_empty=IsEmptyKey(key="tags"))]),
    ],
    must_not=[FieldCondition(key="lang", match=Match(except_=["de"]))],
)
CLIENT_CASES = [FILTERS["range and must_not any"], FILTERS["has_id, fewer than k"], TYPED]


def _check_client_answers(
    index: Index[Any], queries: np.ndarray, flt: Any, hits: list[Any], binary: Any, as_json: Any
) -> None:
    _assert_rows(
        [[h.id for h in row] for row in hits],
        [[h.score for h in row] for row in hits],
        *_expected(index, queries, flt, one_by_one=True, as_json=True),
    )
    for got, json_body in ((binary, False), (as_json, True)):
        want_ids, want_scores = _expected(index, queries, flt, as_json=json_body)
        np.testing.assert_array_equal(got.ids, want_ids)
        np.testing.assert_array_equal(got.scores, want_scores)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_clients_match_in_process(served, queries: np.ndarray, name: str) -> None:
    url, local = served
    with Client(url) as client:
        for flt in CLIENT_CASES:
            hits = [client.search(name, q, K, filter=flt) for q in queries]
            binary = client.search_batch(name, queries, K, filter=flt)
            as_json = client.search_batch(name, queries, K, filter=flt, binary=False)
            _check_client_answers(local[name], queries, flt, hits, binary, as_json)

    async def run_async() -> list[Any]:
        async with AsyncClient(url) as client:
            out = []
            for flt in CLIENT_CASES:
                hits = await asyncio.gather(
                    *(client.search(name, q, K, filter=flt) for q in queries)
                )
                binary = await client.search_batch(name, queries, K, filter=flt)
                as_json = await client.search_batch(name, queries, K, filter=flt, binary=False)
                out.append((flt, list(hits), binary, as_json))
            return out

    for flt, hits, binary, as_json in asyncio.run(run_async()):
        _check_client_answers(local[name], queries, flt, hits, binary, as_json)


def test_empty_filter_is_no_filter(served, queries: np.ndarray) -> None:
    url, local = served
    want = local["docs"].search(queries[:1], K).ids[0].tolist()
    for flt in ({}, None):
        body = {"vector": queries[0].tolist(), "k": K, "filter": flt}
        hits = httpx.post(f"{url}/v1/collections/docs/search", json=body).json()["hits"]
        assert [h["id"] for h in hits] == want
    with Client(url) as client:
        assert [h.id for h in client.search("docs", queries[0], K, filter=Filter())] == want


# -- bad filters ----------------------------------------------------------------------------

BAD_FILTERS = [
    pytest.param(
        {"must": [{"key": "color", "match": {"value": "red"}}]},
        "filter.must.0.key",
        "no payload index",
        id="unindexed field",
    ),
    pytest.param(
        {"must": [{"key": "year", "match": {"value": "2020"}}]},
        "filter.must.0.match.value",
        "integer",
        id="string for an integer field",
    ),
    pytest.param(
        {"should": [{"key": "year", "match": {"any": [2020, 2021.5]}}]},
        "filter.should.0.match.any.1",
        "integer",
        id="float among integers",
    ),
    pytest.param(
        {"must": [{"key": "lang", "range": {"gte": 1}}]},
        "filter.must.0.range",
        "keyword",
        id="range on a keyword field",
    ),
    pytest.param({"must": []}, "filter.must", "at least 1", id="empty must"),
    pytest.param(
        {"must": [{"key": "lang", "match": {"value": "en", "any": ["de"]}}]},
        "filter.must.0.match",
        "exactly one",
        id="match with two operators",
    ),
    pytest.param(
        {"must": [{"key": "lang", "match": {"like": "e%"}}]},
        "filter.must.0.match.like",
        "not permitted",
        id="unknown operator",
    ),
    pytest.param(
        {"must": [{"key": "lang"}]}, "filter.must.0", "exactly one", id="condition without test"
    ),
    pytest.param({"must": [5]}, "filter.must.0", "", id="condition not an object"),
    pytest.param({"where": []}, "filter.where", "not permitted", id="unknown clause"),
    pytest.param(
        {"should": [{"has_id": [1]}], "min_should": 2},
        "filter",
        "min_should",
        id="min_should over should",
    ),
]


def _invalid_filter(response: httpx.Response, field: str, words: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == "invalid_filter" and error["field"] == field, error
    assert words in error["message"] and field in error["message"], error


@pytest.mark.parametrize(("flt", "field", "words"), BAD_FILTERS)
def test_bad_filters_are_invalid_filter(
    served, queries: np.ndarray, flt: dict[str, Any], field: str, words: str
) -> None:
    url, _ = served
    route = f"{url}/v1/collections/docs/search"
    q = queries[0].tolist()
    _invalid_filter(httpx.post(route, json={"vector": q, "filter": flt}), field, words)
    body = {"vectors": queries.tolist(), "filter": flt}
    _invalid_filter(httpx.post(f"{route}/batch", json=body), field, words)
    binary = httpx.post(
        f"{route}/batch",
        params={"filter": json.dumps(flt)},
        content=_npy(queries),
        headers={"content-type": "application/x-npy"},
    )
    _invalid_filter(binary, field, words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{oops", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('"lang"', "JSON object"),
        ("[" * 5000, "nested too deeply"),
    ],
)
def test_bad_json_in_the_binary_batch_filter(
    served, queries: np.ndarray, text: str, words: str
) -> None:
    url, _ = served
    response = httpx.post(
        f"{url}/v1/collections/docs/search/batch",
        params={"filter": text},
        content=_npy(queries),
        headers={"content-type": "application/x-npy"},
    )
    _invalid_filter(response, "filter", words)


def test_a_filter_that_is_not_an_object_in_a_body(served, queries: np.ndarray) -> None:
    url, _ = served
    for flt in (5, "lang", [{"key": "lang"}]):
        body = {"vector": queries[0].tolist(), "filter": flt}
        response = httpx.post(f"{url}/v1/collections/docs/search", json=body)
        _invalid_filter(response, "filter", "")


def test_clients_check_filters_and_raise_the_servers_errors(served, queries: np.ndarray) -> None:
    url, _ = served
    with Client(url) as client:
        # malformed: refused before anything is sent, naming the place
        for flt, where in (
            ({"must": []}, "filter.must"),
            ({"must": [{"key": "lang", "match": {"like": 1}}]}, "filter.must.0.match.like"),
            ({"must": [{"key": "year", "range": {"gt": float("nan")}}]}, "finite"),
        ):
            with pytest.raises(ValueError, match=re.escape(where)):
                client.search("docs", queries[0], filter=flt)
            with pytest.raises(ValueError, match=re.escape(where)):
                client.search_batch("docs", queries, filter=flt)
        with pytest.raises(ValueError, match="Filter or a mapping"):
            client.search("docs", queries[0], filter='{"must": []}')  # type: ignore[arg-type]
        # well formed, but not for this collection: the server's answer
        unindexed = {"must": [{"key": "color", "match": {"value": "red"}}]}
        for call in (
            lambda: client.search("docs", queries[0], filter=unindexed),
            lambda: client.search_batch("docs", queries, filter=unindexed),
            lambda: client.search_batch("docs", queries, filter=unindexed, binary=False),
        ):
            with pytest.raises(InvalidRequestError) as caught:
                call()
            error = caught.value
            assert (error.status_code, error.code) == (400, "invalid_filter")
            assert error.field == "filter.must.0.key"


# -- metrics and schema ---------------------------------------------------------------------


def test_metrics_count_filtered_and_unfiltered_queries(served, queries: np.ndarray) -> None:
    url, _ = served

    def counts() -> dict[tuple[str, str], float]:
        found = {}
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith("glint_search_queries_total{"):
                labels, value = line.split(" ")
                collection = labels.split('collection="')[1].split('"')[0]
                filtered = labels.split('filtered="')[1].split('"')[0]
                found[(collection, filtered)] = float(value)
        return found

    def total(collection: str) -> float:
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith(f'glint_queries_total{{collection="{collection}"}} '):
                return float(line.split(" ")[1])
        return 0.0

    before, before_total = counts(), total("ann")
    route = f"{url}/v1/collections/ann/search"
    httpx.post(route, json={"vector": queries[0].tolist()}).raise_for_status()
    httpx.post(route, json={"vector": queries[0].tolist(), "filter": {}}).raise_for_status()
    body = {"vectors": queries.tolist(), "filter": FILTERS["match value"]}
    httpx.post(f"{route}/batch", json=body).raise_for_status()
    after = counts()
    assert after.get(("ann", "false"), 0) - before.get(("ann", "false"), 0) == 2
    assert after.get(("ann", "true"), 0) - before.get(("ann", "true"), 0) == len(queries)
    assert total("ann") - before_total == 2 + len(queries)  # the old metric counts them all
    text = httpx.get(f"{url}/metrics").text
    assert "lang" not in text  # the label says whether, never what


def test_openapi_describes_the_filter(served) -> None:
    url, _ = served
    schema = httpx.get(f"{url}/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in (
        "Filter",
        "FieldCondition",
        "Match",
        "Range",
        "HasIdCondition",
        "IsEmptyCondition",
    ):
        assert name in components, name
    search = schema["paths"]["/v1/collections/{name}/search"]["post"]["requestBody"]
    batch = schema["paths"]["/v1/collections/{name}/search/batch"]["post"]
    for body in (search, batch["requestBody"]):
        prop = body["content"]["application/json"]["schema"]["properties"]["filter"]
        assert {"$ref": "#/components/schemas/Filter"} in prop["anyOf"]
    assert "filter" in [p["name"] for p in batch["parameters"]]
    refs = {m for m in json.dumps(schema).split('"#/components/schemas/')[1:]}
    assert {ref.split('"')[0] for ref in refs} <= set(components)  # no reference dangles
    match = components["Match"]["properties"]
    assert set(match) == {"value", "any", "except"}


def test_filter_json_examples_of_the_contract_parse() -> None:
    """The filter JSON of the public contract, as a client sends it."""
    from glint.client._validate import check_filter

    for example in (
        {"must": [{"key": "lang", "match": {"value": "en"}}]},
        {"must": [{"key": "lang", "match": {"any": ["en", "de"]}}]},
        {"must_not": [{"key": "lang", "match": {"except": ["fr"]}}]},
        {"must": [{"key": "year", "range": {"gte": 2020, "lt": 2024}}]},
        {"should": [{"has_id": [1, 2]}, {"is_empty": {"key": "tags"}}]},
    ):
        assert check_filter(example) == example
