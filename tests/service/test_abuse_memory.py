"""Memory under abuse (issue 15): maximal JSON batches and decompression bombs, all at once,
against a real ``glint serve`` process.

The server serves ``docs`` (flat, cos, 3,000 x 384) and ``mv`` (muvera over flat, ip, token
dimension 64). ``JSON_CLIENTS`` clients each send ``REQUESTS`` maximal JSON batches (10,000 x
384 numbers with 4 decimals, 28 MB, built once and shared) while ``BOMB_CLIENTS`` clients each
send ``REQUESTS`` ``.npz`` bombs (``tokens`` 2,000,000 x 64 float32 zeros and ``offsets``,
deflated to ~0.5 MB, 512 MB inflated) to the multi-vector batch route. Before the admission
budget, 50 such batches took a server from 0.6 to 4.5 GB.

Asserted:

- the server's peak RSS (``VmHWM``, reset after warm-up, and ``VmRSS`` sampled throughout)
  stays under its RSS after warm-up plus :data:`BUDGET` (``GLINT_MAX_INFLIGHT_BYTES``) plus
  :data:`SLACK`. The bound scales with the budget: bodies in flight cost at most
  ``max(budget, the costliest single request)`` (here one maximal JSON batch, charged
  116 MB by ``json_cost``, fits in the 128 MiB budget, two do not); the slack covers what is
  not a body (search buffers, answers, threads, the allocator's fragmentation);
- ``/readyz``, polled throughout, answers 200 within 1 s every time;
- no answer comes later than the request timeout (+ :data:`MARGIN`) after its request was
  fully sent;
- every answer is 200, 413, 422 or 503, never a 500;
- once idle again, the budget is all given back and the RSS comes back within
  :data:`IDLE_SLACK` of its baseline (the heap is trimmed).

The figures are logged (``-o log_cli=true --log-cli-level=INFO`` shows them).
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pytest

from glint.index import build_index
from glint.service.limits import json_cost
from glint.service.stepwise import STEP_BYTES

from testkit import (
    clustered,
    poll,
    spawn_serve,
    stop_process,
    token_sets,
)

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

MIB = 1 << 20
DIM, TOKEN_DIM = 384, 64
BUDGET = 128 * MIB  # one maximal JSON batch (charged 116 MB) at a time, beside small bodies
SLACK = 256 * MIB
IDLE_SLACK = 96 * MIB  # what the server may keep once idle again (it kept 1.4 GB before)
TIMEOUT = 8.0  # GLINT_REQUEST_TIMEOUT_S
MARGIN = 1.5
READY_WITHIN = 1.0
JSON_CLIENTS = BOMB_CLIENTS = 50
REQUESTS = 2  # per client
ALLOWED = {200, 413, 422, 503}
MV_SPEC = "muvera:k_sim=2,dim_proj=8,r_reps=4,tokens=f32,inner=(flat)"


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _inflight(server: Server) -> float:
    """The bytes the admission budget has in use, from /metrics."""
    text = httpx.get(f"{server.url}/metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("glint_inflight_body_bytes ")]
    return float(line.split()[1])


def _json_batch() -> bytes:
    """The maximal JSON batch: 10,000 x 384 numbers with 4 decimals (~28 MB)."""
    queries = np.round(np.random.default_rng(7).standard_normal((10_000, DIM)) * 0.5, 4)
    return orjson.dumps({"vectors": queries.tolist(), "k": 10})


def _bomb() -> bytes:
    """What ``np.savez_compressed(tokens=zeros((2_000_000, 64), float32), offsets=...)``
    writes, streamed into the archive so that the 512 MB of zeros are never held here."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("tokens.npy", "w", force_zip64=True) as member:
            header = {"descr": "<f4", "fortran_order": False, "shape": (2_000_000, TOKEN_DIM)}
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(TOKEN_DIM * 4 * 10_000)
            for _ in range(200):
                member.write(zeros)
        offsets = io.BytesIO()
        np.save(offsets, np.array([0, 2_000_000], np.int64))
        archive.writestr("offsets.npy", offsets.getvalue())
    return buffer.getvalue()


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    baseline: int = 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("abuse")
    build_index(clustered(3000, DIM, seed=1), "flat", "cos").save(root / "docs")
    docs = token_sets(300, TOKEN_DIM, seed=2, mean_tokens=6)
    build_index(docs, MV_SPEC, "ip").save(root / "mv")
    log_path = root / "serve.log"
    proc, url = spawn_serve(
        [f"docs={root / 'docs'}", f"mv={root / 'mv'}"],
        log_path,
        max_inflight_bytes=BUDGET,
        request_timeout_s=TIMEOUT,
        log_level="warning",
    )
    try:
        running = Server(proc, url)
        # warm-up: a search of each kind (a batch of 1,000 for docs: its kernels, threads and
        # allocator arenas are those of the big batches), so the baseline holds what they keep
        rows = np.random.default_rng(0).standard_normal((1000, DIM)).round(4)
        warm = {"vectors": rows.tolist()}
        assert httpx.post(f"{url}/v1/collections/docs/search/batch", json=warm).is_success
        tokens = {"token_sets": [np.ones((3, TOKEN_DIM)).tolist()]}
        assert httpx.post(f"{url}/v1/collections/mv/search/batch", json=tokens).is_success
        try:  # 5 resets the peak RSS to the current one (Linux >= 4.0)
            with open(f"/proc/{proc.pid}/clear_refs", "w") as clear:
                clear.write("5")
        except OSError:
            pass
        running.baseline = _memory(proc.pid)["VmRSS"]
        yield running
        assert proc.poll() is None, "the server died"
        text = log_path.read_text()
        assert "Traceback" not in text and "unhandled" not in text, text[-4000:]
    finally:
        stop_process(proc)


@dataclass
class Answer:
    status: int
    after_sent: float  # seconds from the last byte of the request to the answer's headers


def _send(http: httpx.Client, path: str, body: bytes, media: str) -> Answer:
    times: dict[str, float] = {}

    def trace(event: str, _: object) -> None:
        times[event] = time.monotonic()

    response = http.post(
        path, content=body, headers={"content-type": media}, extensions={"trace": trace}
    )
    answered = times.get("http11.receive_response_headers.complete", time.monotonic())
    # "complete", or "failed" when the server closed its end first (it answered unread)
    sent = times.get(
        "http11.send_request_body.complete", times.get("http11.send_request_body.failed", 0.0)
    )
    return Answer(response.status_code, answered - sent)


# /readyz is timed from a process of its own: in this one, a hundred sending threads would
# delay the poller's own work (the GIL), and their time would be counted as the server's.
_POLLER = """
import json, sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
times = []
with httpx.Client(timeout=30) as http:
    while not stop.wait(0.05):
        started = time.monotonic()
        status = http.get(sys.argv[1] + "/readyz").status_code
        times.append((status, time.monotonic() - started, time.time()))
print(json.dumps(times))
"""


class Watch:
    """Samples the server's RSS on a thread, and times /readyz from another process, until
    the ``with`` block ends."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.stop = threading.Event()
        self.rss_peak = 0
        self.ready: list[tuple[int, float, float]] = []  # status, seconds, when (epoch)
        self.sampler = threading.Thread(target=self._rss, daemon=True)
        self.poller: subprocess.Popen[str] | None = None

    def __enter__(self) -> Watch:
        self.sampler.start()
        self.poller = subprocess.Popen(
            [sys.executable, "-c", _POLLER, self.server.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.sampler.join(timeout=10)
        assert self.poller is not None
        out, _ = self.poller.communicate(timeout=60)
        self.ready = [(status, seconds, at) for status, seconds, at in json.loads(out)]

    def _rss(self) -> None:
        while not self.stop.wait(0.02):
            self.rss_peak = max(self.rss_peak, _memory(self.server.proc.pid)["VmRSS"])


def test_maximal_batches_and_bombs_stay_within_the_memory_bound(server: Server) -> None:
    batch, bomb = _json_batch(), _bomb()
    assert 25e6 < len(batch) < 30e6 and len(bomb) < 1e6
    assert json_cost(batch, step=STEP_BYTES) <= BUDGET < 2 * json_cost(batch, step=STEP_BYTES)
    jobs = [("/v1/collections/docs/search/batch", batch, "application/json")] * JSON_CLIENTS
    jobs += [("/v1/collections/mv/search/batch", bomb, "application/x-npz")] * BOMB_CLIENTS
    limits = httpx.Limits(max_connections=len(jobs), max_keepalive_connections=len(jobs))
    started, epoch = time.monotonic(), time.time()
    with (
        httpx.Client(base_url=server.url, timeout=60, limits=limits) as http,
        Watch(server) as watch,
        ThreadPoolExecutor(len(jobs)) as pool,
    ):

        def client(job: tuple[str, bytes, str]) -> list[tuple[str, Answer]]:
            return [(job[2], _send(http, *job)) for _ in range(REQUESTS)]

        answers = [a for done in pool.map(client, jobs) for a in done]
    took = time.monotonic() - started
    peak = max(_memory(server.proc.pid)["VmHWM"], watch.rss_peak)
    # idle again: every charge given back, and the heap's free pages to the system
    poll(lambda: _inflight(server) == 0, what="the admission budget back to 0")
    idle = poll(
        lambda: (rss := _memory(server.proc.pid)["VmRSS"]) < server.baseline + IDLE_SLACK and rss,
        timeout=10,
        what="the server's RSS back near its baseline",
    )
    counts = Counter(f"{media.rsplit('/', 1)[-1]} {a.status}" for media, a in answers)
    slowest = max(a.after_sent for _, a in answers)
    ready_worst = max(seconds for _, seconds, _ in watch.ready)
    slow_polls = [(round(s, 3), round(at - epoch, 1)) for _, s, at in watch.ready if s > 0.25]
    log.info(
        "%d requests in %.1f s: %s; RSS baseline %.0f MiB, peak %.0f MiB (+%.0f MiB, bound "
        "+%.0f MiB), idle after %.0f MiB; /readyz polled %d times, slowest %.3f s; slowest answer "
        "%.2f s after its request was sent (timeout %.1f s); polls over 0.25 s (seconds, "
        "when): %s",
        len(answers),
        took,
        dict(sorted(counts.items())),
        server.baseline / MIB,
        peak / MIB,
        (peak - server.baseline) / MIB,
        (BUDGET + SLACK) / MIB,
        idle / MIB,
        len(watch.ready),
        ready_worst,
        slowest,
        TIMEOUT,
        slow_polls,
    )
    assert {a.status for _, a in answers} <= ALLOWED, counts
    assert peak - server.baseline < BUDGET + SLACK, (peak - server.baseline) / MIB
    assert watch.ready and all(status == 200 for status, _, _ in watch.ready)
    assert ready_worst < READY_WITHIN
    assert slowest < TIMEOUT + MARGIN
    assert took < 90
