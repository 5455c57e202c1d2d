"""Shared fixtures: synthetic clustered data and real servers on ephemeral loopback ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest


def clustered(
    n: int, dim: int, *, seed: int = 0, clusters: int = 32, intrinsic: int = 12
) -> np.ndarray:
    """Clustered float32 data with a low intrinsic dimension (a realistic ANN fixture)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((intrinsic, dim)).astype(np.float32)
    centers = rng.standard_normal((clusters, intrinsic)).astype(np.float32) * 3.0
    labels = rng.integers(0, clusters, n)
    latent = centers[labels] + rng.standard_normal((n, intrinsic)).astype(np.float32)
    noise = 0.1 * rng.standard_normal((n, dim)).astype(np.float32)
    return np.ascontiguousarray(latent @ basis + noise, dtype=np.float32)


def brute_force(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Reference top-k row numbers in float64."""
    q, x = queries.astype(np.float64), base.astype(np.float64)
    if metric == "cos":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if metric == "l2":
        scores = -((q**2).sum(1)[:, None] - 2 * q @ x.T + (x**2).sum(1)[None, :])
    else:
        scores = q @ x.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def token_sets(
    n: int,
    dim: int = 32,
    *,
    seed: int = 0,
    topics: int = 64,
    mean_tokens: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic multi-vector documents: ``(tokens float32 [T, dim] unit-norm, offsets
    int64 [n + 1])``. Each set draws its tokens around a few of ``topics`` directions (as a
    passage mixes a few themes), with 3 to ``2 · mean_tokens`` tokens per set."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((topics, dim)).astype(np.float32)
    lengths = rng.integers(3, 2 * mean_tokens, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    picks = rng.integers(0, topics, (n, 3))
    which = picks[np.repeat(np.arange(n), lengths), rng.integers(0, 3, int(offsets[-1]))]
    tokens = centers[which] + 0.5 * rng.standard_normal((int(offsets[-1]), dim))
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    return np.ascontiguousarray(tokens, np.float32), offsets


def queries_from(
    docs: tuple[np.ndarray, np.ndarray], nq: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Queries that paraphrase random documents: each keeps about 60% of one document's
    tokens (at least one), perturbed and re-normalised, as a real query shares words with
    the passages that answer it."""
    rng = np.random.default_rng(seed)
    tokens, offsets = docs
    mats = []
    for i in rng.integers(0, len(offsets) - 1, nq):
        own = tokens[offsets[i] : offsets[i + 1]]
        take = own[rng.random(len(own)) < 0.6]
        take = take if len(take) else own[:1]
        noisy = take + 0.3 / np.sqrt(tokens.shape[1]) * rng.standard_normal(take.shape)
        mats.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    q_offsets = np.zeros(nq + 1, np.int64)
    np.cumsum([len(m) for m in mats], out=q_offsets[1:])
    return np.concatenate(mats).astype(np.float32), q_offsets


def chamfer_truth(
    docs: tuple[np.ndarray, np.ndarray], queries: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference Chamfer/MaxSim top-k in float64, one query and one document at a time."""
    dt, do = docs[0].astype(np.float64), docs[1]
    qt, qo = queries[0].astype(np.float64), queries[1]
    scores = np.empty((len(qo) - 1, len(do) - 1))
    for i in range(len(qo) - 1):
        sims = qt[qo[i] : qo[i + 1]] @ dt.T
        for j in range(len(do) - 1):
            scores[i, j] = sims[:, do[j] : do[j + 1]].max(axis=1).sum()
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.fixture(scope="session")
def multivec() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return token_sets


@pytest.fixture(scope="session")
def multivec_queries() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return queries_from


@pytest.fixture(scope="session")
def chamfer() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return chamfer_truth


@pytest.fixture(scope="session")
def data() -> Callable[..., np.ndarray]:
    return clustered


@pytest.fixture(scope="session")
def exact() -> Callable[..., np.ndarray]:
    return brute_force


class ServerThread:
    """A real uvicorn server on 127.0.0.1 and an ephemeral port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0, *, wait_ready: bool = True) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        if wait_ready:  # indices load in the background; poll /readyz with a bound
            while httpx.get(f"{url}/readyz").status_code != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not become ready in time")
                time.sleep(0.01)
        return url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(index_dirs=[...], **settings) -> base_url`` once ``/readyz`` says 200 (or at
    once with ``wait_ready=False``); servers stop at teardown."""
    from glint.service.app import create_app
    from glint.service.settings import Settings

    running: list[ServerThread] = []

    def start(*, wait_ready: bool = True, **settings: Any) -> str:
        server = ServerThread(create_app(Settings(**settings)))
        running.append(server)
        return server.start(wait_ready=wait_ready)

    yield start
    for server in running:
        server.stop()
