"""`glint serve` as people run it: several workers, JSON logs with request ids, flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from glint.client import Client, ConflictError
from glint.index import build_index

from testkit import GLINT, free_port, glint_error, poll, wait_ready

DIM = 16


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((500, DIM)).astype(np.float32)
    path = tmp_path_factory.mktemp("serve") / "docs"
    build_index(base, "flat", "l2").save(path)
    return path, base


@pytest.mark.slow
def test_two_workers_share_the_index_and_refuse_admin_changes(index_dir, glint_serve) -> None:
    path, base = index_dir
    url = glint_serve(f"docs={path}", "--workers", "2")
    with Client(url) as client:
        for i in range(20):  # spread over both workers by new connections
            with Client(url) as fresh:
                assert fresh.search("docs", base[i], k=1)[0].id == i
        with pytest.raises(ConflictError) as info:
            client.reload("docs", path)
        assert "need a single worker (this server runs 2)" in info.value.message


def test_json_logs_carry_request_ids(index_dir, glint_serve) -> None:
    path, base = index_dir
    url = glint_serve(f"docs={path}")
    response = httpx.post(
        f"{url}/v1/collections/docs/search",
        json={"vector": base[0].tolist()},
        headers={"x-request-id": "e2e-log-1"},
    )
    assert response.status_code == 200
    log = glint_serve.logs[url]
    poll(lambda: "e2e-log-1" in log.read_text(), interval=0.05, what=f"e2e-log-1 in {log}")
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert records, "no JSON log lines"
    (access,) = [r for r in records if r.get("request_id") == "e2e-log-1"]
    assert access["logger"] == "glint.access" and access["status"] == 200
    assert access["route"] == "/v1/collections/{name}/search"
    assert any(r["logger"] == "glint.service.app" and "ready" in r["message"] for r in records)
    assert any("without auth on loopback only" in r["message"] for r in records)


@pytest.mark.slow
def test_serve_flag_errors_are_one_line(index_dir) -> None:
    path, _ = index_dir
    assert glint_error("serve", str(path), "--workers", "0") == (
        "glint: error: workers: Input should be greater than or equal to 1"
    )
    message = glint_error("serve", str(path), "--log-format", "xml")
    assert "invalid choice: 'xml'" in message


def test_sigterm_stops_the_server_cleanly(index_dir) -> None:
    path, _ = index_dir
    port = free_port()
    with subprocess.Popen(  # leaving the block closes the stderr pipe
        [GLINT, "serve", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    ) as proc:
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
            output = proc.stderr.read() if proc.stderr else ""
            assert "Traceback" not in output and "Finished server process" in output
        finally:
            if proc.poll() is None:
                proc.kill()
