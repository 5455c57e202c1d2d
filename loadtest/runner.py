"""Drive load against a running glint server and record every request.

One ``httpx.AsyncClient`` with a keep-alive pool of ``concurrency`` connections is shared by
``concurrency`` async workers; each worker takes the next pre-built search request (built once
by the client's I/O-free core, cycling through the query set; see :mod:`.plan`), times the
whole exchange with ``perf_counter`` and records the outcome. The run is bounded by a request
count or a duration; warm-up requests go first and are not recorded. Admin reloads fire at set
times on a separate connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from .config import LoadConfig, ReloadPlan
from .errors import LoadTestError
from .plan import RequestBuilder, search_requests
from .queries import checked_queries, load_queries
from .report import LoadReport, summarize

__all__ = ["LoadConfig", "ReloadPlan", "arun_load", "load_queries", "run_load"]

SAMPLES_PER_KIND = 3  # error messages kept per error kind


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _server_message(response: httpx.Response) -> str:
    """``HTTP <status>: <message>``, the message from the error envelope when there is one."""
    message = ""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message", ""))
        elif isinstance(body, dict) and "detail" in body:
            message = str(body["detail"])
    except ValueError:
        pass
    if not message:
        message = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    return f"HTTP {response.status_code}: {message}" if message else f"HTTP {response.status_code}"


async def _collection_info(
    client: httpx.AsyncClient, builder: RequestBuilder, config: LoadConfig
) -> tuple[int, bool]:
    """The collection's ``(dim, multivector)``; fails with one line if it cannot be had."""
    request = builder.collection()
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        raise LoadTestError(f"cannot reach {config.url}: {_describe(exc)}") from None
    if response.status_code != 200:
        raise LoadTestError(
            f"{config.url}: collection {config.collection!r}: {_server_message(response)}"
        )
    try:
        info = response.json()
        return int(info["dim"]), bool(info.get("multivector", False))
    except (ValueError, KeyError, TypeError):
        raise LoadTestError(
            f"{config.url}: GET {request.url.path} did not answer a collection description"
        ) from None


class _Recorder:
    """Per measured request: start (seconds after t0), latency (seconds), error kind."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.latencies: list[float] = []
        self.kinds: list[str | None] = []
        self.samples: list[dict[str, Any]] = []
        self._sampled: dict[str, int] = {}

    def add(self, start: float, latency: float, kind: str | None, detail: Any) -> None:
        self.starts.append(start)
        self.latencies.append(latency)
        self.kinds.append(kind)
        if kind is not None and self._sampled.get(kind, 0) < SAMPLES_PER_KIND:
            self._sampled[kind] = self._sampled.get(kind, 0) + 1
            message = _server_message(detail) if isinstance(detail, httpx.Response) else str(detail)
            self.samples.append({"t": round(start, 4), "kind": kind, "message": message})


@dataclass
class _Phase:
    """Shared by the workers of one phase (one event loop, so no locking)."""

    requests: list[httpx.Request]
    count: int | None
    deadline: float
    offset: int  # where in the request cycle this phase starts
    t0: float
    recorder: _Recorder | None
    issued: int = 0


async def _worker(client: httpx.AsyncClient, phase: _Phase) -> None:
    requests = phase.requests
    while True:
        if phase.count is not None:
            if phase.issued >= phase.count:
                return
        elif time.perf_counter() >= phase.deadline:
            return
        request = requests[(phase.offset + phase.issued) % len(requests)]
        phase.issued += 1
        kind: str | None = None
        detail: Any = None
        begin = time.perf_counter()
        try:
            response = await client.send(request)
            if not 200 <= response.status_code < 300:
                kind, detail = f"http_{response.status_code}", response
        except (httpx.HTTPError, OSError) as exc:
            kind, detail = type(exc).__name__, _describe(exc)
        end = time.perf_counter()
        if phase.recorder is not None:
            phase.recorder.add(begin - phase.t0, end - begin, kind, detail)


async def _run_phase(client: httpx.AsyncClient, concurrency: int, phase: _Phase) -> None:
    workers = min(concurrency, phase.count) if phase.count is not None else concurrency
    await asyncio.gather(*(_worker(client, phase) for _ in range(workers)))


def _reload_event(plan: ReloadPlan, **fields: Any) -> dict[str, Any]:
    return {"kind": "reload", "path": plan.path, "at_s": plan.at, **fields}


async def _reload(
    admin: httpx.AsyncClient,
    builder: RequestBuilder,
    plan: ReloadPlan,
    t0: float,
    state: dict[str, bool],
) -> dict[str, Any]:
    delay = t0 + plan.at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    state["started"] = True
    begin = time.perf_counter()
    status: int | None = None
    try:
        response = await admin.send(builder.reload(plan.path))
        status = response.status_code
        ok = 200 <= status < 300
        if ok:
            try:
                info = response.json()
                message = f"serving {info['kind']} ({info['count']} entries) from {info['path']}"
            except (ValueError, KeyError, TypeError):
                message = "reloaded"
        else:
            message = _server_message(response)
    except (httpx.HTTPError, OSError) as exc:
        ok, message = False, _describe(exc)
    return _reload_event(
        plan,
        start_s=round(begin - t0, 4),
        seconds=round(time.perf_counter() - begin, 4),
        status=status,
        ok=ok,
        message=message,
    )


_Reloads = list[tuple[ReloadPlan, dict[str, bool], "asyncio.Task[dict[str, Any]]"]]


_Admin = tuple[httpx.AsyncClient, RequestBuilder]


async def _admin(stack: contextlib.AsyncExitStack, config: LoadConfig) -> _Admin | None:
    """The connection and requests of the reloads, if any are planned."""
    if not config.reloads:
        return None
    client = await stack.enter_async_context(
        httpx.AsyncClient(timeout=httpx.Timeout(config.reload_timeout))
    )
    key = config.admin_key or config.api_key
    return client, RequestBuilder(config, api_key=key, timeout=config.reload_timeout)


def _start_reloads(admin: _Admin | None, config: LoadConfig, t0: float) -> _Reloads:
    """One task per planned reload, each waiting for its time."""
    reloads: _Reloads = []
    if admin is None:
        return reloads
    for plan in config.reloads:
        state = {"started": False}
        task = asyncio.create_task(_reload(*admin, plan, t0, state))
        reloads.append((plan, state, task))
    return reloads


async def _reload_events(reloads: _Reloads, elapsed: float) -> list[dict[str, Any]]:
    """The reloads that ran, awaited, and those the load ended before, cancelled."""
    events = []
    for plan, state, task in reloads:
        if state["started"]:
            events.append(await task)
            continue
        with contextlib.suppress(asyncio.CancelledError):
            await task
        events.append(
            _reload_event(
                plan,
                start_s=None,
                seconds=None,
                status=None,
                ok=False,
                message=f"not run: the load ended {elapsed:.2f} s after it began",
            )
        )
    return events


def _meta(config: LoadConfig, started_at: str, dim: int, multivector: bool) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "url": config.url,
        "collection": config.collection,
        "dim": dim,
        "multivector": multivector,
        "mode": config.mode,
        "transport": config.transport,
        "batch": config.queries_per_request,
        "k": config.k,
        "params": dict(config.params),
        "filter": config.filter,
        "concurrency": config.concurrency,
        "warmup": config.warmup,
        "bound": {"count": config.count, "duration_s": config.duration},
    }


async def arun_load(config: LoadConfig) -> LoadReport:
    """Run the load test described by ``config`` and summarise it."""
    queries = load_queries(config.queries) if config.queries is not None else None
    builder = RequestBuilder(config, api_key=config.api_key, timeout=config.timeout)
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(timeout=httpx.Timeout(config.timeout), limits=limits)
        )
        dim, multivector = await _collection_info(client, builder, config)
        if queries is not None:
            queries = checked_queries(queries, dim, multivector, config.collection)
        requests = search_requests(builder, config, dim, multivector, queries)
        if config.warmup:
            warm = _Phase(requests, config.warmup, math.inf, 0, time.perf_counter(), None)
            await _run_phase(client, config.concurrency, warm)

        admin = await _admin(stack, config)
        recorder = _Recorder()
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        deadline = t0 + config.duration if config.duration is not None else math.inf
        reloads = _start_reloads(admin, config, t0)
        phase = _Phase(requests, config.count, deadline, config.warmup, t0, recorder)
        try:
            await _run_phase(client, config.concurrency, phase)
        finally:
            elapsed = time.perf_counter() - t0
            for _, state, task in reloads:
                if not state["started"]:
                    task.cancel()
        events = await _reload_events(reloads, elapsed)
    return summarize(
        meta=_meta(config, started_at, dim, multivector),
        starts=recorder.starts,
        latencies=recorder.latencies,
        kinds=recorder.kinds,
        samples=recorder.samples,
        duration=elapsed,
        queries_per_request=config.queries_per_request,
        events=events,
    )


def run_load(config: LoadConfig) -> LoadReport:
    """:func:`arun_load` in a fresh event loop (not from inside a running one)."""
    return asyncio.run(arun_load(config))
