"""Hot reload against a real server: swaps under concurrent load fail no request, a swap that
cannot be used leaves the old index serving, and /readyz tells the truth throughout."""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

import glint.service.registry as registry_module
from glint.client import Client, ConflictError, InvalidRequestError, NotFoundError
from glint.index import build_index

from testkit import poll

DIM = 16
N = 400
B_IDS = 100_000  # index B's ids start here, so every answer says which index gave it


@pytest.fixture
def two_indices(tmp_path: Path, data) -> tuple[Path, Path, np.ndarray]:
    base = data(N, DIM)
    build_index(base, "flat", "l2").save(tmp_path / "a")
    b = build_index(base, "hnsw:m=8,storage=lvq8", "l2", ids=np.arange(N) + B_IDS)
    b.search(base[:2], 5)  # compile the search kernels here, not inside a timed request
    b.save(tmp_path / "b")
    return tmp_path / "a", tmp_path / "b", base


def _gate(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the next index load wait: returns (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    real = registry_module._open

    def gated(path: Path, *, verify: bool):
        entered.set()
        assert release.wait(30), "the test never released the load"
        return real(path, verify=verify)

    monkeypatch.setattr(registry_module, "_open", gated)
    return entered, release


@pytest.mark.slow
def test_reload_under_concurrent_load_fails_no_request(two_indices, serve) -> None:
    a, b, base = two_indices
    url = serve(index_dirs=[f"docs={a}"])
    stop = threading.Event()
    failures: list[str] = []
    seen: set[str] = set()
    counts = {"requests": 0}
    lock = threading.Lock()
    body = io.BytesIO()
    np.save(body, base[:32])

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = worker
            while not stop.is_set():
                if i % 3 == 0:  # a binary batch
                    r = http.post(
                        "/v1/collections/docs/search/batch",
                        params={"k": 5},
                        content=body.getvalue(),
                        headers={"content-type": "application/x-npy"},
                    )
                    ids = np.asarray(r.json()["ids"]).ravel() if r.status_code == 200 else []
                else:
                    q = base[i % N].tolist()
                    r = http.post("/v1/collections/docs/search", json={"vector": q, "k": 5})
                    ids = [h["id"] for h in r.json()["hits"]] if r.status_code == 200 else []
                ready = http.get("/readyz").status_code
                with lock:
                    counts["requests"] += 2
                    if r.status_code != 200 or ready != 200:
                        failures.append(f"{r.status_code} {r.text[:200]} readyz={ready}")
                    elif len(ids):
                        origin = {"b" if x >= B_IDS else "a" for x in ids}
                        if len(origin) != 1:
                            failures.append(f"mixed answer {ids}")
                        seen.update(origin)
                i += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    try:
        with Client(url) as admin:
            for swap in range(8):
                target = b if swap % 2 == 0 else a
                info = admin.reload("docs", target, timeout=120)
                assert info.path == str(target)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert failures == []
    assert counts["requests"] > 50
    assert seen == {"a", "b"}  # both indices answered during the run
    hits = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": base[0].tolist()})
    assert hits.json()["hits"][0]["id"] == 0  # the last swap (to a) is the one serving


def test_failed_reloads_keep_the_old_index(two_indices, tmp_path: Path, data, serve) -> None:
    a, b, base = two_indices
    url = serve(index_dirs=[f"docs={a}"])
    damaged = tmp_path / "damaged"
    shutil.copytree(b, damaged)
    victim = max(
        (p for p in damaged.iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size
    )
    raw = bytearray(victim.read_bytes())
    raw[-5] ^= 0xFF
    victim.write_bytes(bytes(raw))
    build_index(data(100, DIM + 1), "flat", "l2").save(tmp_path / "wide")
    from glint.index import TokenSets

    tokens = data(300, DIM)
    sets = TokenSets(tokens, np.arange(0, 301, 3, dtype=np.int64))
    build_index(sets, "muvera:r_reps=2,inner=(flat)", "ip").save(tmp_path / "multi")

    with Client(url) as admin:
        with pytest.raises(InvalidRequestError) as info:
            admin.reload("docs", damaged)
        assert info.value.status_code == 422 and "checksum" in info.value.message
        assert info.value.message.startswith(f"{damaged}/")  # the path as sent
        assert "collection 'docs' still serves its current index" in info.value.message
        with pytest.raises(ConflictError) as info:
            admin.reload("docs", tmp_path / "wide")
        assert "dimension 17, the collection serves 16" in info.value.message
        with pytest.raises(ConflictError) as info:
            admin.reload("docs", tmp_path / "multi")
        assert "multi-vector" in info.value.message
        # a missing path answers as any other that holds no index: 422, no existence oracle
        with pytest.raises(InvalidRequestError) as info:
            admin.reload("docs", tmp_path / "nowhere")
        assert info.value.status_code == 422 and "still serves" in info.value.message
        with pytest.raises(NotFoundError):
            admin.reload("ghost", b)
        with pytest.raises(ConflictError, match="exists; use reload"):
            admin.load("docs", b)
        (info_now,) = admin.collections()
        assert info_now.path == str(a)
        hits = admin.search("docs", base[7], k=1)
        assert hits[0].id == 7
        metrics = httpx.get(f"{url}/metrics").text
        assert (
            'glint_admin_operations_total{action="reload",outcome="invalid_index"} 2.0' in metrics
        )
        assert (
            'glint_admin_operations_total{action="reload",outcome="dimension_mismatch"} 2.0'
            in metrics
        )


def test_readyz_during_startup_load(two_indices, serve, monkeypatch) -> None:
    a, _, base = two_indices
    entered, release = _gate(monkeypatch)
    url = serve(index_dirs=[f"docs={a}"], wait_ready=False)
    assert entered.wait(30)
    live = httpx.get(f"{url}/healthz")
    assert live.status_code == 200 and live.json()["loading"] == ["docs"]
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "loading",
        "collections": 0,
        "loading": ["docs"],
        "failed": {},
    }
    early = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": base[0].tolist()})
    assert early.status_code == 503 and "still loading" in early.json()["error"]["message"]
    for method, route in (("POST", "load"), ("POST", "reload")):
        admin = httpx.request(method, f"{url}/v1/collections/docs/{route}", json={"path": str(a)})
        assert admin.status_code in (409, 503), admin.text  # never raced past the start-up load
    unload = httpx.delete(f"{url}/v1/collections/docs")
    assert unload.status_code == 409 and "start-up" in unload.json()["error"]["message"]
    release.set()
    poll(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=30, what="ready")
    assert httpx.get(f"{url}/readyz").json()["loading"] == []


def test_readyz_reports_a_failed_startup_load(two_indices, tmp_path: Path, serve) -> None:
    a, _, _ = two_indices
    broken = tmp_path / "broken"
    shutil.copytree(a, broken)
    (broken / "vectors.npy").write_bytes(b"\x93NUMPY garbage")
    url = serve(index_dirs=[f"docs={broken}", f"ok={a}"], wait_ready=False)
    poll(lambda: not httpx.get(f"{url}/readyz").json()["loading"], timeout=30, what="loads over")
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200  # "ok" serves: one bad index takes down only itself
    body = ready.json()
    assert body["status"] == "degraded" and list(body["failed"]) == ["docs"]
    assert "was not loaded" in body["failed"]["docs"]  # no keys: every caller may read why
    search = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": [0.0] * DIM})
    assert search.status_code == 503 and "failed to load" in search.json()["error"]["message"]
    ok = httpx.post(f"{url}/v1/collections/ok/search", json={"vector": [0.0] * DIM})
    assert ok.status_code == 200  # the healthy collection serves regardless
    # an admin brings the failed collection in from a good copy: the server is ready again
    with Client(url) as admin:
        assert admin.load("docs", a).path == str(a)
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["failed"] == {}
    assert ready.json()["status"] == "ok"


def test_swap_in_progress_keeps_serving_and_refuses_a_second(
    two_indices, serve, monkeypatch
) -> None:
    a, b, base = two_indices
    url = serve(index_dirs=[f"docs={a}"])
    entered, release = _gate(monkeypatch)
    outcome: dict[str, int] = {}

    def swap() -> None:
        outcome["status"] = httpx.post(
            f"{url}/v1/collections/docs/reload", json={"path": str(b)}, timeout=60
        ).status_code

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        assert entered.wait(30)
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200 and ready.json()["loading"] == ["docs"]
        hit = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": base[3].tolist()})
        assert hit.json()["hits"][0]["id"] == 3  # still the old index
        second = httpx.post(f"{url}/v1/collections/docs/reload", json={"path": str(a)})
        assert second.status_code == 409 and "busy" in second.json()["error"]["message"]
    finally:
        release.set()
        swapper.join(timeout=60)
    assert outcome == {"status": 200}
    hit = httpx.post(f"{url}/v1/collections/docs/search", json={"vector": base[3].tolist()})
    assert hit.json()["hits"][0]["id"] == 3 + B_IDS


def test_load_and_unload(two_indices, serve) -> None:
    a, b, _ = two_indices
    url = serve(index_dirs=[f"docs={a}"])
    with Client(url) as admin:
        assert admin.load("extra", b).count == N
        assert [c.name for c in admin.collections()] == ["docs", "extra"]
        admin.unload("extra")
        assert [c.name for c in admin.collections()] == ["docs"]
        with pytest.raises(NotFoundError):
            admin.unload("extra")
        bad = httpx.post(f"{url}/v1/collections/bad name!/load", json={"path": str(b)})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "name"
    assert 'glint_index_vectors{collection="extra"}' not in httpx.get(f"{url}/metrics").text
