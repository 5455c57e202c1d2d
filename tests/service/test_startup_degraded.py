"""One bad index takes down only itself (issue 15, item 9): `glint serve` starts with the good
directories, `/readyz` answers 200 ``degraded`` naming the bad ones, and the command fails at
start only when no directory can be served."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from glint.index import build_index
from glint.index import storage as index_storage

from testkit import GLINT, free_port, glint_error, poll, stop_process, wait_ready

DIM = 8
READ = "read-key-0123456789"
ADMIN = "admin-key-9876543210"


def _largest_array(index_dir: Path) -> Path:
    return max(index_dir.glob("*.npy"), key=lambda p: p.stat().st_size)


@pytest.fixture
def dirs(tmp_path: Path, data) -> dict[str, Path]:
    """A good index, a copy with a truncated array and a copy without its manifest."""
    good = tmp_path / "good"
    build_index(data(200, DIM), "flat", "l2").save(good)
    truncated = tmp_path / "truncated"
    shutil.copytree(good, truncated)
    victim = _largest_array(truncated)
    victim.write_bytes(victim.read_bytes()[:-100])
    unlisted = tmp_path / "unlisted"
    shutil.copytree(good, unlisted)
    (unlisted / "manifest.json").unlink()
    return {"good": good, "truncated": truncated, "unlisted": unlisted}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(f"read {READ}\nadmin {ADMIN}\n")
    return path


@pytest.fixture
def glint_serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        stop_process(proc)


def _start(procs: list[subprocess.Popen[str]], log: Path, *args: str | Path) -> str:
    port = free_port()
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [GLINT, "serve", *map(str, args), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            env=os.environ.copy(),
        )
    procs.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log=log)  # 200: ok, or degraded
    return url


@pytest.mark.slow
def test_serve_starts_without_the_bad_directories(
    dirs: dict[str, Path], keys: Path, tmp_path: Path, glint_serve: list[subprocess.Popen[str]]
) -> None:
    """Was: a truncated file or missing manifest in one directory stopped the server."""
    stale = dirs["good"].parent / ".good.tmp-999999999-0-0123abcd"  # a dead build's leftover
    stale.mkdir()
    args = [f"docs={dirs['good']}", dirs["truncated"], dirs["unlisted"], "--api-keys", keys]
    url = _start(glint_serve, tmp_path / "serve.log", *args)
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "degraded",
        "collections": 1,
        "loading": [],
        "failed": {"truncated": "failed", "unlisted": "failed"},
    }
    reasons = httpx.get(f"{url}/readyz", headers={"authorization": f"Bearer {ADMIN}"}).json()
    assert "truncated or replaced" in reasons["failed"]["truncated"]
    assert "no glint index can be loaded" in reasons["failed"]["unlisted"]
    as_reader = {"authorization": f"Bearer {READ}"}
    hits = httpx.post(
        f"{url}/v1/collections/docs/search", json={"vector": [1.0] * DIM}, headers=as_reader
    )
    assert hits.status_code == 200 and len(hits.json()["hits"]) == 10
    bad = httpx.post(
        f"{url}/v1/collections/truncated/search", json={"vector": [1.0] * DIM}, headers=as_reader
    )
    assert bad.status_code == 503 and "failed to load at start-up" in bad.text
    log = (tmp_path / "serve.log").read_text()
    assert "truncated or replaced" in log and str(dirs["truncated"]) in log  # all of it
    if hasattr(index_storage, "sweep_stale_temps"):
        assert not stale.exists()  # swept before loading


def test_serve_fails_at_start_only_when_every_directory_is_bad(dirs: dict[str, Path]) -> None:
    message = glint_error("serve", dirs["truncated"], dirs["unlisted"], "--port", "1")
    assert message.startswith(
        "glint: error: none of the 2 index directories can be served: truncated: "
    ), message
    assert "; unlisted: " in message and "not a glint index (no manifest.json)" in message
    alone = glint_error("serve", dirs["unlisted"], "--port", "1")
    assert alone == f"glint: error: {dirs['unlisted']}: not a glint index (no manifest.json)"


def test_malformed_arguments_still_fail_at_start(dirs: dict[str, Path]) -> None:
    twice = glint_error("serve", dirs["good"], f"good={dirs['truncated']}", "--port", "1")
    assert twice == (
        "glint: error: collection name 'good' is given twice; use NAME=DIR to rename one"
    )
    bad_name = glint_error("serve", f"no way={dirs['good']}", "--port", "1")
    assert "collection name 'no way' must be letters, digits" in bad_name


def test_nothing_serving_is_unavailable(dirs: dict[str, Path], tmp_path: Path, serve) -> None:
    """Start-up loads over, none of them good (a checksum the quick check at start does not
    read): 503 ``unavailable``, as a load balancer should drop this server."""
    damaged = tmp_path / "damaged"
    shutil.copytree(dirs["good"], damaged)
    victim = _largest_array(damaged)
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 0xFF
    victim.write_bytes(bytes(raw))
    url = serve(index_dirs=[str(damaged)], wait_ready=False)
    poll(lambda: not httpx.get(f"{url}/readyz").json()["loading"], timeout=30, what="loads over")
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and list(body["failed"]) == ["damaged"]
