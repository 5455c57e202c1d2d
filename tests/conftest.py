"""Shared fixtures: synthetic clustered data and real servers on ephemeral loopback ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

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

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(index_dirs=[...], **settings) -> base_url``; servers stop at teardown."""
    from glint.service.app import create_app
    from glint.service.settings import Settings

    running: list[ServerThread] = []

    def start(**settings: Any) -> str:
        server = ServerThread(create_app(Settings(**settings)))
        running.append(server)
        return server.start()

    yield start
    for server in running:
        server.stop()
