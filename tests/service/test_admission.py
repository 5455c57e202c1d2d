"""The admission budget, the request deadline and hung-up clients, against a real server.

A request is charged what its body will cost parsed (``JSON_FACTOR`` times its declared size
for JSON) when its headers are in, and holds the charge until it is answered and no worker
thread works for it; one that would pass ``max_inflight_bytes`` gets 503 ``unavailable`` with
``Retry-After`` before its body is read. The request timeout covers reading the body, parsing
it and searching. A client that hangs up mid-body is recorded as 499, never as a 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from glint.client.models import BatchSearchRequest, BatchSearchResponse, SearchRequest
from glint.index import build_index
from glint.service.errors import ServiceError
from glint.service.limits import (
    JSON_FACTOR,
    SMALL_JSON_BODY,
    AdmissionBudget,
    AdmissionMiddleware,
    answer_cost,
    charge_of,
    json_cost,
)
from glint.service.routes import search as search_routes
from glint.service.stepwise import STEP_BYTES

from testkit import poll

DIM = 16
MIB = 1 << 20
BUDGET = 3 * MIB
MV_SPEC = "muvera:k_sim=2,dim_proj=8,r_reps=4,tokens=f32,inner=(flat)"


@pytest.fixture
def collections(tmp_path: Path, data, multivec) -> list[str]:
    build_index(data(300, DIM), "flat", "l2").save(tmp_path / "docs")
    build_index(multivec(40, DIM, seed=4, mean_tokens=4), MV_SPEC, "ip").save(tmp_path / "mv")
    return [f"docs={tmp_path / 'docs'}", f"mv={tmp_path / 'mv'}"]


@pytest.fixture
def server(collections: list[str], serve) -> str:
    url: str = serve(index_dirs=collections, max_inflight_bytes=BUDGET, max_batch=10_000)
    return url


def _json_batch(rows: int) -> bytes:
    """A JSON batch body of ``rows`` x DIM numbers written with 6 decimals (~9 bytes each)."""
    values = np.round(np.random.default_rng(rows).standard_normal((rows, DIM)), 6)
    return ('{"vectors":' + str(values.tolist()).replace(" ", "") + ',"k":3}').encode()


BIG = _json_batch(600)  # 91 KB: over SMALL_JSON_BODY, so charged; 1.1 MB once parsed
# a request that declares this many bytes holds so much of the budget that BIG does not fit
HELD = (BUDGET - JSON_FACTOR * len(BIG)) // JSON_FACTOR + 1000


def _post(url: str, body: bytes, route: str = "docs/search/batch") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/collections/{route}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"no {name} in /metrics"
    return float(found.group(1))


def _statuses(url: str) -> dict[str, float]:
    """Requests by status, all routes together, from /metrics."""
    counts: dict[str, float] = {}
    for status, value in re.findall(
        r'^glint_requests_total\{.*status="(\d+)"\} (\S+)$',
        httpx.get(f"{url}/metrics").text,
        re.MULTILINE,
    ):
        counts[status] = counts.get(status, 0.0) + float(value)
    return counts


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "unavailable" and "GLINT_MAX_INFLIGHT_BYTES" in error["message"]


class RawRequest:
    """A request written by hand on a socket: headers with a Content-Length, then as much of
    the body as the test chooses, when it chooses."""

    def __init__(
        self, url: str, path: str, length: int, media: str = "application/json", extra: str = ""
    ):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nContent-Type: {media}\r\n"
            f"{extra}Content-Length: {length}\r\n\r\n"
        )
        self.sock.sendall(head.encode())
        self.sent_at = time.monotonic()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def status(self) -> int:
        """The status of the answer (waits for its first line)."""
        received = b""
        while b"\r\n" not in received:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection without answering"
            received += chunk
        return int(received.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawRequest]]:
    opened: list[RawRequest] = []

    def open_request(*args: Any, **kwargs: Any) -> RawRequest:
        opened.append(RawRequest(*args, **kwargs))
        return opened[-1]

    yield open_request
    for request in opened:
        request.close()


def test_requests_past_the_budget_get_503_unread_and_the_budget_comes_back(server, raw) -> None:
    assert len(BIG) > SMALL_JSON_BODY and 2 * json_cost(BIG, step=STEP_BYTES) < BUDGET
    # a request whose body is on its way holds its charge, most of the budget
    held = raw(server, "/v1/collections/docs/search/batch", HELD)
    poll(
        lambda: _metric(server, "glint_inflight_body_bytes") == JSON_FACTOR * HELD,
        what="the held request's charge",
    )
    # five big bodies at once, none of which fits beside it: 503, and not one byte read
    with ThreadPoolExecutor(5) as pool:
        refused = list(pool.map(lambda _: _post(server, BIG), range(5)))
    for response in refused:
        _unavailable(response)
    assert _metric(server, "glint_admission_rejections_total") == 5
    # small bodies are not charged: the single-query path and small batches still answer
    one = httpx.post(f"{server}/v1/collections/docs/search", json={"vector": [0.1] * DIM})
    assert one.status_code == 200, one.text
    assert _post(server, _json_batch(5)).status_code == 200
    # once the held request is gone, its charge is given back and big bodies fit again
    held.close()
    poll(lambda: _metric(server, "glint_inflight_body_bytes") == 0, what="the charge back")
    with ThreadPoolExecutor(2) as pool:  # two fit together
        answers = list(pool.map(lambda _: _post(server, BIG), range(2)))
    for response in answers:
        assert response.status_code == 200, response.text
        assert len(response.json()["ids"]) == 600
    poll(lambda: _metric(server, "glint_inflight_body_bytes") == 0, what="the charges back")


def test_a_chunked_body_is_charged_as_it_arrives(server, raw) -> None:
    held = raw(server, "/v1/collections/docs/search/batch", HELD)
    poll(lambda: _metric(server, "glint_inflight_body_bytes") > 0, what="the held charge")

    def chunks() -> Iterator[bytes]:  # no Content-Length: charged as it comes, it does not fit
        for start in range(0, len(BIG), 8192):
            yield BIG[start : start + 8192]

    response = httpx.post(
        f"{server}/v1/collections/docs/search/batch",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    _unavailable(response)
    held.close()
    poll(lambda: _metric(server, "glint_inflight_body_bytes") == 0, what="the charges back")
    # alone, a chunked body may cost more than the whole budget (7 MB here): it runs by itself
    large = _json_batch(4000)
    assert json_cost(large, step=STEP_BYTES) > BUDGET
    alone = httpx.post(
        f"{server}/v1/collections/docs/search/batch",
        content=iter([large[:-1], large[-1:]]),
        headers={"content-type": "application/json"},
    )
    assert alone.status_code == 200, alone.text


def test_a_client_hanging_up_mid_body_is_no_server_error(server, raw, caplog) -> None:
    caplog.set_level(logging.INFO)
    for length, route in ((50_000, "docs/search"), (150_000, "docs/search/batch")):
        gone = raw(server, f"/v1/collections/{route}", length)  # small (uncharged), then big
        gone.send(BIG[: length // 3])
        gone.close()
    poll(lambda: _statuses(server).get("499") == 2, what="two requests recorded as 499")
    assert "500" not in _statuses(server)
    assert _metric(server, "glint_inflight_body_bytes") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "unhandled" not in caplog.text
    assert _post(server, BIG).status_code == 200


def test_k_must_be_an_integer(server) -> None:
    for route, body in (
        ("docs/search", {"vector": [0.0] * DIM, "k": True}),
        ("docs/search/batch", {"vectors": [[0.0] * DIM], "k": True}),
        ("docs/search/batch", {"vectors": [[0.0] * DIM], "k": 2.0}),
    ):
        response = httpx.post(f"{server}/v1/collections/{route}", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["field"] == "k"


def test_an_npz_that_decodes_past_the_limit_is_413(collections, serve) -> None:
    url = serve(index_dirs=collections, max_decoded_bytes=MIB)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, tokens=np.zeros((100_000, DIM), np.float32), offsets=np.array([0, 100_000])
    )
    assert len(buffer.getvalue()) < 20_000  # a small bomb: 6.4 MB inflated
    response = httpx.post(
        f"{url}/v1/collections/mv/search/batch",
        content=buffer.getvalue(),
        headers={"content-type": "application/x-npz"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("tokens.npy", b"not an array")
    response = httpx.post(
        f"{url}/v1/collections/mv/search/batch",
        content=broken.getvalue(),
        headers={"content-type": "application/x-npz"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_body"


TIMEOUT = 0.5
MARGIN = 0.4  # a loaded CI machine's scheduling, not the server's work


def test_a_body_sent_too_slowly_is_answered_at_the_deadline(collections, serve, raw) -> None:
    url = serve(index_dirs=collections, request_timeout_s=TIMEOUT)
    slow = raw(url, "/v1/collections/docs/search/batch", len(BIG))
    slow.send(BIG[:1000])  # ... and the rest never comes
    assert slow.status() == 503
    assert time.monotonic() - slow.sent_at < TIMEOUT + MARGIN
    assert _metric(url, "glint_search_timeouts_total") == 1


def test_a_slow_parse_is_answered_at_the_deadline_and_keeps_its_charge(
    collections, serve, monkeypatch
) -> None:
    url = serve(index_dirs=collections, request_timeout_s=TIMEOUT)
    release, parsing = threading.Event(), threading.Event()
    real = search_routes._json_batch

    def slow_parse(*args: Any) -> Any:
        parsing.set()
        assert release.wait(30)
        return real(*args)

    monkeypatch.setattr(search_routes, "_json_batch", slow_parse)
    started = time.monotonic()
    response = _post(url, BIG)
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert response.status_code == 503 and response.json()["error"]["code"] == "timeout"
    assert response.headers["retry-after"] == "1"
    assert parsing.is_set()
    # the parse goes on in its thread, holding the request's memory: still charged; and
    # off the event loop, which answers meanwhile
    assert _metric(url, "glint_inflight_body_bytes") >= JSON_FACTOR * len(BIG)
    assert httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
    release.set()
    poll(lambda: _metric(url, "glint_inflight_body_bytes") == 0, what="the charge back")
    monkeypatch.undo()
    assert _post(url, BIG).status_code == 200


def test_the_budget_counts_charges_until_their_last_holder_lets_go() -> None:
    idle: list[int] = []
    budget = AdmissionBudget(1000, on_idle=lambda: idle.append(budget.used), idle_after=1500)
    first = budget.admit(600)
    assert first is not None and budget.used == 600
    assert budget.admit(500) is None  # would pass the budget: refused, nothing charged
    assert budget.used == 600
    other = budget.admit(300)
    assert other is not None
    assert not first.try_require(800) and first.bytes == 600  # growing past it fails too
    other.release()
    assert first.try_require(700) and budget.used == 700
    assert first.try_require(100) and first.bytes == 700  # a charge never shrinks
    first.retain()  # a worker thread holds it too
    first.release()  # the request is answered: the thread's hold keeps the bytes counted
    assert budget.used == 700
    first.release()
    assert budget.used == 0 and idle == []  # 1000 bytes released: not yet worth a trim
    # a request costing more than the whole budget is admitted alone, charged all of it
    second = budget.admit(5000)
    assert second is not None and second.bytes == 1000
    assert budget.admit(1) is None
    second.release()
    assert idle == [0]  # 2000 bytes released since the last call, and nothing in flight
    # Charge.require answers 503 when the budget cannot take it
    taken = budget.admit(1000)
    nothing = budget.admit(0)
    assert taken is not None and nothing is not None
    with pytest.raises(ServiceError) as refused:
        nothing.require(1)
    assert refused.value.status == 503 and refused.value.code == "unavailable"


def test_a_body_of_millions_of_bad_items_is_one_error(server) -> None:
    """An 8 MB list of 2M strings is 422 about its first item: the request's lists stop at
    their first bad item (fail_fast), so the server never holds 2M errors (it took 2 GB)."""
    bad = b"[" + b",".join([b'"a"'] * 2_000_000) + b"]"
    for model, route, body in (
        (BatchSearchRequest, "docs/search/batch", b'{"vectors": [' + bad + b"]}"),
        (SearchRequest, "docs/search", b'{"vectors": [' + bad + b"]}"),
        (SearchRequest, "docs/search", b'{"vector": ' + bad + b"}"),
    ):
        with pytest.raises(ValidationError) as refused:
            model.model_validate_json(body)
        assert refused.value.error_count() == 1
        response = _post(server, body, route)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["field"] in ("vectors.0.0", "vector.0"), error


def test_a_body_of_many_unknown_fields_is_answered_without_listing_them(server) -> None:
    fields = ",".join(f'"x{i}":0' for i in range(5000))
    body = ('{"vectors":[[0.5]],' + fields + "}").encode()
    with pytest.raises(RequestValidationError) as refused:
        search_routes._parse_body(BatchSearchRequest, body)
    (only,) = refused.value.errors()
    assert only["type"] == "too_many_errors" and "5000 errors" in only["msg"]
    response = _post(server, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    # a few unknown fields: the first is named
    response = _post(server, b'{"vectors":[[0.5]],"x1":0,"x2":0}')
    assert response.status_code == 422 and response.json()["error"]["field"] == "x1"


def _npy(rows: int) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(rows).standard_normal((rows, DIM)).astype(np.float32))
    return buffer.getvalue()


def test_answers_are_charged_before_the_search(collections, serve, raw) -> None:
    """A batch is charged what its answer will cost (nq x k hits) once it knows nq and k,
    before it searches: a small body asking for a huge answer gets the 503 a huge body gets,
    and a request with no charge (a small JSON body) gets one for a big answer."""
    url = serve(index_dirs=collections, max_inflight_bytes=BUDGET)
    held_length = (BUDGET - MIB) // JSON_FACTOR  # leaves 1 MiB of the budget free
    held = raw(url, "/v1/collections/docs/search/batch", held_length)
    poll(
        lambda: _metric(url, "glint_inflight_body_bytes") == JSON_FACTOR * held_length,
        what="the held request's charge",
    )
    npy, rows = _npy(200), np.full((200, DIM), 0.5).tolist()
    assert len(npy) < 20_000 and answer_cost(200 * 1000, npz=True) > MIB

    def batch(body: bytes, k: int, npz: bool = False) -> httpx.Response:
        binary = body.startswith(b"\x93NUMPY")
        return httpx.post(
            f"{url}/v1/collections/docs/search/batch",
            content=body,
            params={"k": k} if binary else {},
            headers={
                "content-type": "application/x-npy" if binary else "application/json",
                "accept": "application/x-npz" if npz else "application/json",
            },
            timeout=30,
        )

    small_json = json.dumps({"vectors": rows, "k": 1000}).encode()
    assert len(small_json) < SMALL_JSON_BODY  # not charged for its body
    for response in (batch(npy, 1000), batch(npy, 1000, npz=True), batch(small_json, 1000)):
        _unavailable(response)
    # small answers fit
    assert batch(npy, 3).status_code == 200
    answer = batch(small_json.replace(b'"k": 1000', b'"k": 3'), 3)
    assert answer.status_code == 200 and len(answer.json()["ids"]) == 200
    assert _metric(url, "glint_inflight_body_bytes") == JSON_FACTOR * held_length
    held.close()
    poll(lambda: _metric(url, "glint_inflight_body_bytes") == 0, what="the charge back")
    # alone, a request whose answer costs more than the budget runs (charged all of it); its
    # JSON answer, written in steps, says what its .npz answer says
    big = _npy(1500)
    as_json, as_npz = batch(big, 1000), batch(big, 1000, npz=True)
    assert as_json.status_code == 200 and as_npz.status_code == 200, as_json.text
    with np.load(io.BytesIO(as_npz.content)) as arrays:
        ids, scores = arrays["ids"], arrays["scores"]
    doc = as_json.json()
    assert set(doc) == {"ids", "scores", "metric", "larger_is_better", "took_ms"}
    assert doc["metric"] == "l2" and doc["larger_is_better"] is False
    assert len(doc["ids"]) == 1500 and all(len(row) == 300 for row in doc["ids"])
    assert (np.array(doc["ids"]) == ids[:, :300]).all() and (ids[:, 300:] == -1).all()
    assert (np.array(doc["scores"], np.float32) == scores[:, :300]).all()
    BatchSearchResponse.model_validate_json(as_json.content)
    poll(lambda: _metric(url, "glint_inflight_body_bytes") == 0, what="the charges back")


def _through_admission(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> int:
    """The charge a request with ``headers`` and a body of ``chunks`` holds once its body is
    read, run through the admission middleware alone (0: none)."""
    charged: list[int] = []
    middleware: AdmissionMiddleware

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        charge = charge_of(scope)
        charged.append(0 if charge is None else charge.bytes)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = AdmissionMiddleware(app, capacity=64 * MIB)
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    assert middleware.budget.used == 0  # given back once answered
    return charged[0]


def test_a_transfer_encoding_is_counted_whatever_content_length_says() -> None:
    chunks = [b"1" * 100_000] * 3
    json_type = (b"content-type", b"application/json")
    for headers in (
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"10"), json_type],
        [(b"content-length", b"10"), (b"transfer-encoding", b"chunked"), json_type],
        [(b"content-length", b"10"), (b"transfer-encoding", b"gzip, chunked"), json_type],
    ):
        assert _through_admission(headers, chunks) == JSON_FACTOR * 300_000, headers
    # a Content-Length alone is trusted (the server reads no more than it says)
    assert _through_admission([(b"content-length", b"10"), json_type], [b"1" * 10]) == 0


def test_bodies_of_callers_without_a_key_are_refused_before_any_charge(
    collections, serve, raw
) -> None:
    """With keys on, a request announcing a body without a valid key is answered 401 at once,
    unread and uncharged: no one without a key can take the budget from those with one."""
    key = "read-key-0123456789"
    server = serve(index_dirs=collections, max_inflight_bytes=BUDGET, api_keys=f"read {key}")
    path = "/v1/collections/docs/search/batch"
    for extra in ("", "Authorization: Bearer wrong-key-000\r\n"):
        refused = raw(server, path, HELD, extra=extra)
        assert refused.status() == 401
        assert _metric(server, "glint_inflight_body_bytes") == 0
    held = raw(server, path, HELD, extra=f"Authorization: Bearer {key}\r\n")
    poll(
        lambda: _metric(server, "glint_inflight_body_bytes") == JSON_FACTOR * HELD,
        what="the charge of the caller with a key",
    )
    held.close()
    poll(lambda: _metric(server, "glint_inflight_body_bytes") == 0, what="the charge back")
