"""Test helpers, defined once: synthetic data and exact references, tie-tolerant recall and the
pinned recall floors, a free port, a bounded poll, a real server in a thread, and the `glint`
command run as a user runs it.

The tests run with ``--import-mode=importlib`` and no ``tests/__init__.py``, so nothing under
``tests/`` is importable as a package and test modules cannot import each other or a
``conftest``. pytest's ``pythonpath = ["tests/support"]`` setting puts this folder (and only
it) on ``sys.path``, so any test or conftest can ``from testkit import ...``; the fixtures in
``tests/conftest.py`` hand out the same functions.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

T = TypeVar("T")
FLOORS = Path(__file__).resolve().parents[1] / "index" / "recall_floors.json"
GLINT = str(Path(sys.executable).with_name("glint"))  # the entry point of this environment

# -- data --------------------------------------------------------------------------------------


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


# -- exact references --------------------------------------------------------------------------


def exact_scores(queries: np.ndarray, base: np.ndarray, metric: str) -> np.ndarray:
    """Every query's exact score against every row, float64 ``[nq, n]``, larger is better
    (negated squared distances for l2)."""
    q, x = queries.astype(np.float64), base.astype(np.float64)
    if metric == "cos":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if metric == "l2":
        return -((q**2).sum(1)[:, None] - 2 * q @ x.T + (x**2).sum(1)[None, :])
    return q @ x.T


def chamfer_scores(
    docs: tuple[np.ndarray, np.ndarray], queries: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Exact Chamfer/MaxSim similarities ``[nq, ndocs]`` in float64, one query and one
    document at a time."""
    dt, do = docs[0].astype(np.float64), docs[1]
    qt, qo = queries[0].astype(np.float64), queries[1]
    scores = np.empty((len(qo) - 1, len(do) - 1))
    for i in range(len(qo) - 1):
        sims = qt[qo[i] : qo[i + 1]] @ dt.T
        for j in range(len(do) - 1):
            scores[i, j] = sims[:, do[j] : do[j + 1]].max(axis=1).sum()
    return scores


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows of each query's exact ``scores`` (ties in row order) and their
    scores."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def brute_force(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Reference top-k row numbers in float64."""
    return top_k(exact_scores(queries, base, metric), k)[0]


def chamfer_truth(
    docs: tuple[np.ndarray, np.ndarray], queries: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference Chamfer/MaxSim top-k rows and scores in float64."""
    return top_k(chamfer_scores(docs, queries), k)


# -- recall ------------------------------------------------------------------------------------


def recall(
    found: np.ndarray, scores: np.ndarray, k: int | None = None, *, rtol: float = 1e-6
) -> float:
    """Tie-tolerant recall@k of ``found`` (row numbers ``[nq, >= k]``, -1 for none; ``k``
    defaults to its width) against ``scores``, every row's exact score ``[nq, n]``, larger is
    better.

    A returned row is a hit when its exact score is at least the k-th best exact score (less
    ``rtol`` of it): where rows tie at the k-th place, any of them counts, so an index is not
    marked down for breaking a tie another way. A row returned twice counts once."""
    found = np.asarray(found)
    k = k or found.shape[1]
    found = found[:, :k]
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    bars = kth - rtol * np.abs(kth)
    hits = 0
    for rows, exact, bar in zip(found, scores, bars, strict=True):
        rows = np.unique(rows[rows >= 0])
        hits += int((exact[rows] >= bar).sum())
    return hits / (k * len(found))


@functools.cache
def _floors() -> dict[str, dict[str, Any]]:
    floors: dict[str, dict[str, Any]] = json.loads(FLOORS.read_text())
    return floors


def recall_floor(data: str, spec: str, metric: str, **search: object) -> float:
    """The recall@10 floor pinned in ``tests/index/recall_floors.json`` for index ``spec``
    with ``metric``, searched with ``search`` on the test data set ``data``."""
    params = ",".join(f"{key}={value}" for key, value in sorted(search.items()))
    configuration = " ".join(filter(None, (spec, metric, params)))
    try:
        return float(_floors()[data][configuration])
    except KeyError:
        raise KeyError(f"no recall floor pinned for {data}: {configuration!r}") from None


# -- waiting and serving -----------------------------------------------------------------------


def poll(
    predicate: Callable[[], T], *, timeout: float = 10.0, what: str, interval: float = 0.01
) -> T:
    """Call ``predicate`` until it returns something true, and return that. After ``timeout``
    seconds raise :class:`TimeoutError` saying ``what`` was waited for. The tests' one wait:
    they never sleep for a fixed time."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(interval)  # noqa: TID251 - the one bounded wait
    return result


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str, proc: subprocess.Popen[str], timeout: float = 60.0, log: Path | None = None
) -> None:
    """Poll ``url``'s /readyz until it answers 200; raise if ``proc`` (the server) dies first
    (with ``log``, its stderr file, or its stderr pipe) or the time bound passes."""

    def ready() -> bool:
        if proc.poll() is not None:
            output = log.read_text() if log else (proc.stderr.read() if proc.stderr else "")
            raise RuntimeError(f"server exited with {proc.returncode}: {output}")
        try:
            return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    poll(ready, timeout=timeout, interval=0.05, what=f"{url}/readyz answering 200")


def spawn_serve(
    dirs: list[str], log: Path, **settings: object
) -> tuple[subprocess.Popen[str], str]:
    """A ``glint serve DIR...`` process on a free loopback port with ``GLINT_*`` settings
    (``max_k=50`` -> ``GLINT_MAX_K=50``), its stderr in ``log``, once /readyz says 200."""
    port = free_port()
    env = {**os.environ, **{f"GLINT_{key.upper()}": str(value) for key, value in settings.items()}}
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [GLINT, "serve", *dirs, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log=log)
    except BaseException:
        stop_process(proc)
        raise
    return proc, url


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Terminate ``proc``, killing it if it has not ended within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerThread:
    """A real uvicorn server on 127.0.0.1 and an ephemeral port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 120.0, *, wait_ready: bool = True) -> str:
        """Start; return the base URL once listening and (unless not ``wait_ready``) once
        ``/readyz`` says 200, as indices load in the background. The bound is generous: a
        first index of a kind warms by compiling its kernels, which on 2 cores shared by two
        test workers has taken over 30 s."""
        self.thread.start()
        poll(self._started, timeout=timeout, what="server start-up")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        if wait_ready:
            poll(
                lambda: httpx.get(f"{url}/readyz").status_code == 200,
                timeout=timeout,
                what=f"{url}/readyz answering 200",
            )
        return url

    def _started(self) -> bool:
        if self.server.started:
            return True
        if not self.thread.is_alive():
            raise RuntimeError("server thread exited during start-up")
        return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def serving(app: Any, *, wait_ready: bool = True) -> Iterator[str]:
    """Serve ``app`` for the ``with`` block; yields the base URL."""
    server = ServerThread(app)
    try:
        yield server.start(wait_ready=wait_ready)
    finally:
        server.stop()


# -- the glint command -------------------------------------------------------------------------


def run_glint(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the `glint` command to completion; a failure shows its stderr."""
    proc = subprocess.run([GLINT, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def glint_error(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a `glint` command that must fail; returns its one-line error (no traceback)."""
    proc = subprocess.run(
        [GLINT, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]
