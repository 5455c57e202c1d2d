"""Safe network defaults: `glint serve` without API keys on a host that is not loopback is an
error that says what to do (not a silent bind to 127.0.0.1), unless the operator passes
``--allow-unauthenticated`` for a trusted network; then it binds the asked host and says so."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from glint.client import Client
from glint.index import build_index
from glint.service.cli import _is_loopback

from testkit import free_port, glint_error, spawn_serve, stop_process

DIM = 8


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory, data) -> tuple[Path, np.ndarray]:
    base = data(300, DIM, seed=7)
    path = tmp_path_factory.mktemp("bind") / "docs"
    build_index(base, "flat", "l2").save(path)
    return path, base


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the environment of the run, the servers here have no keys."""
    monkeypatch.delenv("GLINT_API_KEYS", raising=False)
    monkeypatch.delenv("GLINT_API_KEYS_FILE", raising=False)
    monkeypatch.delenv("GLINT_ALLOW_UNAUTHENTICATED", raising=False)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_only_loopback_counts_as_loopback(host: str, loopback: bool) -> None:
    assert _is_loopback(host) is loopback


def test_no_keys_on_an_open_host_is_refused_before_anything_starts(docs) -> None:
    path, _ = docs
    port = free_port()
    # Hold the port: had glint got as far as binding it, it would fail with "address in use"
    # instead; the refusal must come first.
    with socket.create_server(("0.0.0.0", port)):
        message = glint_error("serve", path, "--host", "0.0.0.0", "--port", str(port))
    assert message.startswith(
        "glint: error: --host 0.0.0.0 without API keys would serve anyone who can reach it:"
    )
    assert "--api-keys FILE or GLINT_API_KEYS" in message
    assert "bind 127.0.0.1" in message and "--allow-unauthenticated" in message


def test_the_refusal_names_the_variable_and_comes_before_any_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLINT_HOST", "::")
    # a directory that does not exist: loading it would fail with another message
    message = glint_error("serve", tmp_path / "missing")
    assert message.startswith("glint: error: GLINT_HOST=:: without API keys would serve anyone")
    assert "--allow-unauthenticated" in message


def test_allow_unauthenticated_binds_the_asked_host_and_warns(docs, tmp_path: Path) -> None:
    path, base = docs
    log = tmp_path / "serve.log"
    # the flag (spawn_serve puts its arguments after `serve`), the host from GLINT_HOST
    proc, url = spawn_serve([str(path), "--allow-unauthenticated"], log, host="0.0.0.0")
    try:
        port = int(url.rsplit(":", 1)[1])
        index = build_index(base, "flat", "l2")
        with Client(url) as client:  # reachable on 127.0.0.1, no key
            for row in (0, 17, 299):
                hits = client.search("docs", base[row], k=5)
                ids, scores = index.search(base[row][None], k=5)
                assert [hit.id for hit in hits] == ids[0].tolist()
                np.testing.assert_allclose([hit.score for hit in hits], scores[0], rtol=1e-5)
    finally:
        stop_process(proc)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    messages = [(r["level"], r["message"]) for r in records]
    assert any(
        level == "warning" and "WITHOUT AUTH on 0.0.0.0" in text and f"port {port}" in text
        for level, text in messages
    ), messages
    assert any(text.startswith(f"Uvicorn running on http://0.0.0.0:{port}") for _, text in messages)
    assert not any("loopback" in text for _, text in messages)
