"""Limits, timeouts, request ids, structured logs and metrics of the running service."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest

from glint.client import Client
from glint.index import SearchParams, TokenSets, build_index
from glint.index.config import candidate_count
from glint.index.errors import OverLimitError
from glint.service.cores import CoreBudget
from glint.service.deps import SearchPool
from glint.service.errors import ServiceError
from glint.service.observability import JsonFormatter

from testkit import ServerThread, poll

DIM = 16


@pytest.fixture
def server(tmp_path: Path, data, serve) -> str:
    build_index(data(300, DIM), "hnsw:m=8,storage=f32", "l2").save(tmp_path / "docs")
    return serve(index_dirs=[str(tmp_path / "docs")], max_candidates=256)


def test_candidate_counts_are_capped(server: str) -> None:
    url = f"{server}/v1/collections/docs/search"
    ok = httpx.post(url, json={"vector": [0.0] * DIM, "params": {"ef_search": 256}})
    assert ok.status_code == 200
    for body in (
        {"vector": [0.0] * DIM, "params": {"ef_search": 257}},
        {"vector": [0.0] * DIM, "params": {"ef_search": 64, "rerank": 10_000}},
    ):
        response = httpx.post(url, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_parameter" and "at most 256" in error["message"]
        assert error["field"].startswith("params.")
    body = io.BytesIO()
    np.save(body, np.zeros((2, DIM), dtype=np.float32))
    batch = httpx.post(
        f"{server}/v1/collections/docs/search/batch",
        params={"k": 3, "params": json.dumps({"ef_search": 999})},
        content=body.getvalue(),
        headers={"content-type": "application/x-npy"},
    )
    assert batch.status_code == 422, batch.text
    assert batch.json()["error"]["field"] == "params.ef_search"


def test_the_cap_is_checked_before_the_kinds_own_bounds(server: str) -> None:
    """Over the cap (256) and over what hnsw takes at all (16384): the cap's answer."""
    url = f"{server}/v1/collections/docs/search"
    for value in (20_000, "1e9"):
        body = {"vector": [0.0] * DIM, "params": {"ef_search": value}}
        response = httpx.post(url, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == "params.ef_search" and "at most 256" in error["message"]


def test_default_candidates_over_the_cap_are_lowered_to_it(
    tmp_path: Path, multivec, multivec_queries, serve
) -> None:
    """A muvera query without ``candidates`` re-ranks max(10·k, 1000) documents; under a cap
    of 40 the server re-ranks 40, as if the query had asked for them."""
    docs = multivec(300, 16, seed=61)
    queries = TokenSets(*multivec_queries(docs, 8, seed=62))
    index = build_index(docs, "muvera:k_sim=2,dim_proj=8,r_reps=2,inner=(flat)", "ip")
    index.save(tmp_path / "mv")
    capped = index.search(queries, 5, candidates=40)
    differs = (capped.ids != index.search(queries, 5).ids).any(axis=1)
    assert differs.any()  # the cap matters for these queries
    one = int(np.flatnonzero(differs)[0])
    url = serve(index_dirs=[str(tmp_path / "mv")], max_candidates=40)
    with Client(url) as client:
        np.testing.assert_array_equal(client.search_batch("mv", queries, k=5).ids, capped.ids)
        hits = client.search("mv", queries[one], k=5)
        assert [h.id for h in hits] == capped.ids[one].tolist()
        hits = client.search("mv", queries[one], k=5, params={"candidates": None})
        assert [h.id for h in hits] == capped.ids[one].tolist()
        fewer = client.search_batch("mv", queries, k=5, params={"candidates": 20})
        np.testing.assert_array_equal(fewer.ids, index.search(queries, 5, candidates=20).ids)


def test_request_ids_are_echoed_or_made(server: str) -> None:
    given = httpx.get(f"{server}/healthz", headers={"x-request-id": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    made = httpx.get(f"{server}/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    hostile = httpx.get(f"{server}/healthz", headers={"x-request-id": "a b\t{json}"})
    assert hostile.headers["x-request-id"] != "a b\t{json}"
    error = httpx.get(f"{server}/v1/collections/nope", headers={"x-request-id": "r-404"})
    assert error.status_code == 404 and error.headers["x-request-id"] == "r-404"


def test_access_log_is_one_json_record_per_request(server: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="glint.access")
    httpx.post(
        f"{server}/v1/collections/docs/search",
        json={"vector": [0.0] * DIM},
        headers={"x-request-id": "req-1"},
    )
    # the record is written once the answer has gone out: poll for it, with a bound
    found = poll(
        lambda: [r for r in caplog.records if getattr(r, "request_id", "") == "req-1"],
        what="the access record of req-1",
    )
    (record,) = found
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1" and line["status"] == 200
    assert line["route"] == "/v1/collections/{name}/search" and line["collection"] == "docs"
    assert line["level"] == "info" and line["duration_ms"] > 0 and "ts" in line


def test_metrics_cover_requests_errors_and_indices(server: str) -> None:
    httpx.post(f"{server}/v1/collections/docs/search", json={"vector": [0.0] * DIM})
    httpx.post(f"{server}/v1/collections/docs/search", json={"vector": [0.0] * 3})
    text = httpx.get(f"{server}/metrics").text
    route = 'collection="docs",method="POST",route="/v1/collections/{name}/search"'
    assert f'glint_requests_total{{{route},status="200"}} 1.0' in text
    assert f'glint_request_errors_total{{{route},status="400"}} 1.0' in text
    buckets = [line for line in text.splitlines() if line.startswith("glint_request_seconds_b")]
    assert any('route="/v1/collections/{name}/search"' in b and 'le="0.001"' in b for b in buckets)
    assert 'glint_queries_total{collection="docs"} 1.0' in text
    assert "glint_collections_loaded 1.0" in text
    assert "glint_requests_in_flight 1.0" in text  # the scrape itself
    for gauge in ("glint_index_memory_bytes", "glint_index_disk_bytes", "glint_index_vectors"):
        assert f'{gauge}{{collection="docs"}}' in text
    assert "glint_search_timeouts_total 0.0" in text


class Gate:
    """A stand-in index whose searches wait until the test lets them go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()

    def resolve_params(self, k, params, *, cap=None):
        return params

    def search(self, queries, k, *, params, threads, filter=None):
        self.started.set()
        assert self.release.wait(30)
        self.finished.set()
        return k


def test_a_search_over_the_timeout_gets_503_and_its_slot_back() -> None:
    gate = Gate()
    timeouts: list[int] = []
    pool = SearchPool(
        anyio.CapacityLimiter(1), CoreBudget(1), timeout=0.2, on_timeout=lambda: timeouts.append(1)
    )

    async def main() -> None:
        with pytest.raises(ServiceError) as info:
            await pool.search(gate, None, 5, {}, 1)
        assert info.value.status == 503 and info.value.code == "timeout"
        assert "did not finish within the request timeout of 0.2 s" in info.value.message
        # the abandoned search still holds the only slot: a second request waits, then gives up
        assert pool.limiter.borrowed_tokens == 1
        with pytest.raises(ServiceError, match="no search worker became free"):
            await pool.search(gate, None, 5, {}, 1)
        gate.release.set()
        deadline = anyio.current_time() + 30
        while pool.limiter.borrowed_tokens:  # the slot comes back when the thread ends
            assert anyio.current_time() < deadline
            await anyio.sleep(0.01)
        assert await pool.search(gate, None, 7, {}, 1) == 7

    anyio.run(main)
    assert gate.finished.is_set() and len(timeouts) == 2


class QuickParams(SearchParams):
    ef_search: int | None = candidate_count(le=16384, description="a beam width")
    candidates: int | None = candidate_count(le=65536, description="10·k by default")


class Quick:
    """A stand-in index whose search returns what it was asked: k, threads and the
    resolved parameters."""

    def resolve_params(self, k, params, *, cap=None):
        parsed = QuickParams.parse(params, what="a stand-in", cap=cap)
        resolved = parsed.resolved(k, {"candidates": 10 * k})
        return resolved if cap is None else resolved.capped(cap)

    def search(self, queries, k, *, params, threads, filter=None):
        return (k, threads, params.ef_search, params.candidates)


def test_searches_within_the_timeout_are_untouched() -> None:
    pool = SearchPool(anyio.CapacityLimiter(2), CoreBudget(2), timeout=30, max_candidates=100)
    assert anyio.run(pool.search, Quick(), None, 3, {"ef_search": 100}, 2) == (3, 2, 100, 30)
    with pytest.raises(OverLimitError, match="parameter 'candidates': must be at most 100"):
        anyio.run(pool.search, Quick(), None, 3, {"candidates": 101}, 2)
    # Defaults over the cap are lowered to it; those under it, and given values, stay.
    assert anyio.run(pool.search, Quick(), None, 20, {"ef_search": 90}, 2) == (20, 2, 90, 100)
    assert anyio.run(pool.search, Quick(), None, 20, {"candidates": 40}, 2)[3] == 40
    given = {"ef_search": 90}
    anyio.run(pool.search, Quick(), None, 20, given, 2)
    assert given == {"ef_search": 90}  # the caller's dict is left as it was
    uncapped = SearchPool(anyio.CapacityLimiter(2), CoreBudget(2), timeout=30)
    assert anyio.run(uncapped.search, Quick(), None, 20, {}, 2)[3] == 200


def test_timeout_answer_through_the_server(tmp_path: Path, data, serve, monkeypatch) -> None:
    """A slow search answers 503 ``timeout`` with the envelope, and the server keeps serving."""
    build_index(data(100, DIM), "flat", "l2").save(tmp_path / "docs")
    url = serve(index_dirs=[str(tmp_path / "docs")], request_timeout_s=0.3)
    from glint.index.flat import FlatIndex

    real = FlatIndex.search
    release = threading.Event()

    def slow(self, queries, k=10, **kw):
        if queries.shape[0] == 3:  # only the batch of three waits
            release.wait(30)
        return real(self, queries, k, **kw)

    monkeypatch.setattr(FlatIndex, "search", slow)
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/v1/collections/docs/search/batch", json={"vectors": [[0.0] * DIM] * 3}
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "timeout"
    assert response.headers["retry-after"] == "1"
    assert time.perf_counter() - started < 10
    release.set()
    ok = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": [0.0] * DIM})
    assert ok.status_code == 200
    assert "glint_search_timeouts_total 1.0" in httpx.get(f"{url}/metrics").text


def test_candidate_cap_counts_numbers_in_any_form(server: str) -> None:
    """The index's parser reads "999" and 999.0 as 999, so the cap must too."""
    url = f"{server}/v1/collections/docs/search"
    for value in ("999", 999.0, "2.6e2"):
        body = {"vector": [0.0] * DIM, "params": {"ef_search": value}}
        response = httpx.post(url, json=body)
        assert response.status_code == 422, (value, response.text)
        assert "at most 256" in response.json()["error"]["message"]


def test_unhandled_errors_keep_the_request_id(tmp_path: Path, data, caplog) -> None:
    """A 500 (a bug, not bad input) still answers with the envelope and the request id, and
    its log record carries the id."""
    from glint.service.app import create_app
    from glint.service.settings import Settings

    build_index(data(50, DIM), "flat", "l2").save(tmp_path / "docs")
    app = create_app(Settings(index_dirs=[str(tmp_path / "docs")]))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    server = ServerThread(app)
    url = server.start()
    try:
        caplog.set_level(logging.ERROR, logger="glint.service.errors")
        response = httpx.get(f"{url}/boom", headers={"x-request-id": "bug-1"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "bug-1"
        assert response.json()["error"] == {
            "code": "internal",
            "message": "internal server error",
            "field": None,
        }
        (record,) = [r for r in caplog.records if r.name == "glint.service.errors"]
        assert json.loads(JsonFormatter().format(record))["request_id"] == "bug-1"
        assert httpx.get(f"{url}/healthz").status_code == 200  # and it keeps serving
    finally:
        server.stop()
