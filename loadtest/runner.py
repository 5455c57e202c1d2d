"""Drive load against a running glint server and record every request.

One ``httpx.AsyncClient`` with a keep-alive pool of ``concurrency`` connections is shared by
``concurrency`` async workers; each worker takes the next pre-encoded request body (the
bodies are encoded once, cycling through the query set, so the generator spends its CPU on
sending, not on encoding), times the whole exchange with ``perf_counter`` and records the
outcome. The run is bounded by a request count or a duration; warm-up requests go first and
are not recorded. Admin reloads fire at set times on a separate connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import numpy as np

from glint.client.models import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE

from .errors import LoadTestError, UsageError
from .report import LoadReport, summarize

__all__ = ["LoadConfig", "ReloadPlan", "arun_load", "load_queries", "run_load"]

DEFAULT_COUNT = 1000
MAX_BODIES = 256  # distinct pre-encoded request bodies, cycled through
BODY_BUDGET = 64 * 1024 * 1024  # ...unless they would take more memory than this
SAMPLES_PER_KIND = 3  # error messages kept per error kind
RANDOM_TOKENS = (4, 32)  # tokens per random multi-vector query, inclusive

Mode = Literal["single", "batch"]
Transport = Literal["json", "binary"]
# a query set: a float32 [n, dim] matrix, or for multi-vector one token matrix per query
Queries = np.ndarray | list[np.ndarray]
QuerySource = str | Path | np.ndarray | tuple[np.ndarray, np.ndarray] | None


@dataclass(frozen=True)
class ReloadPlan:
    """``POST /v1/collections/{name}/reload {"path": path}`` at ``at`` seconds after the
    measured phase began."""

    at: float
    path: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.at) and self.at >= 0):
            raise UsageError(f"reload time must be a non-negative number of seconds, got {self.at}")
        if not str(self.path):
            raise UsageError("reload path must not be empty")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise UsageError(f"{name} must be {kind}, got {value}")


@dataclass(frozen=True, eq=False)
class LoadConfig:
    """What to send, how hard and for how long.

    Give at most one of ``count`` (measured requests) and ``duration`` (seconds); neither
    means ``count=1000``. ``queries`` is a ``.npy``/``.npz`` path, a float32 ``[n, dim]``
    matrix, a ``(tokens, offsets)`` pair for a multi-vector collection, or ``None`` for random
    unit vectors (``seed``) of the collection's dimension. ``batch`` is the queries per request
    in batch mode (single mode sends one). ``api_key`` is sent as a bearer token with every
    search; reloads use ``admin_key`` (or else ``api_key``).
    """

    url: str
    collection: str
    mode: Mode = "single"
    transport: Transport = "json"
    batch: int = 32
    k: int = 10
    params: Mapping[str, Any] = field(default_factory=dict)
    concurrency: int = 8
    count: int | None = None
    duration: float | None = None
    warmup: int = 0
    queries: QuerySource = None
    seed: int = 0
    api_key: str | None = None
    admin_key: str | None = None
    timeout: float = 30.0
    reloads: Sequence[ReloadPlan] = ()
    reload_timeout: float = 600.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise UsageError(f"URL {self.url!r} must start with http:// or https://")
        if not self.collection:
            raise UsageError("the collection name must not be empty")
        if self.mode not in ("single", "batch"):
            raise UsageError(f"mode must be 'single' or 'batch', got {self.mode!r}")
        if self.transport not in ("json", "binary"):
            raise UsageError(f"transport must be 'json' or 'binary', got {self.transport!r}")
        if self.transport == "binary" and self.mode != "batch":
            raise UsageError("the binary transport needs batch mode (the single route is JSON)")
        for name in ("batch", "k", "concurrency"):
            _positive(name, getattr(self, name))
        _positive("warmup", self.warmup, allow_zero=True)
        _positive("timeout", self.timeout)
        _positive("reload_timeout", self.reload_timeout)
        if self.count is not None and self.duration is not None:
            raise UsageError("give either a request count or a duration, not both")
        if self.count is None and self.duration is None:
            object.__setattr__(self, "count", DEFAULT_COUNT)
        if self.count is not None:
            _positive("count", self.count)
        if self.duration is not None:
            _positive("duration", self.duration)
        object.__setattr__(self, "url", self.url.rstrip("/"))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "reloads", tuple(sorted(self.reloads, key=lambda r: r.at)))

    @property
    def queries_per_request(self) -> int:
        return self.batch if self.mode == "batch" else 1


# --- queries -------------------------------------------------------------------------------


def _split_sets(tokens: Any, offsets: Any, what: str) -> list[np.ndarray]:
    tokens, offsets = np.asarray(tokens), np.asarray(offsets)
    if tokens.ndim != 2 or tokens.dtype.kind not in "fiu" or tokens.shape[0] == 0:
        raise LoadTestError(f"{what}: 'tokens' must be a non-empty numeric [T, dim] array")
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or offsets.size < 2:
        raise LoadTestError(f"{what}: 'offsets' must be a 1-D integer array of n + 1 entries")
    if offsets[0] != 0 or offsets[-1] != tokens.shape[0] or (np.diff(offsets) <= 0).any():
        raise LoadTestError(
            f"{what}: 'offsets' must rise strictly from 0 to the number of tokens "
            f"({tokens.shape[0]}): every query needs at least one token"
        )
    tokens = np.ascontiguousarray(tokens, dtype=np.float32)
    return [tokens[a:b] for a, b in itertools.pairwise(offsets.tolist())]


def _as_matrix(array: Any, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.dtype.kind not in "fiu" or 0 in array.shape:
        raise LoadTestError(
            f"{what}: queries must be a non-empty numeric 2-D [n, dim] array, "
            f"got shape {array.shape} and dtype {array.dtype}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def load_queries(source: str | Path | np.ndarray | tuple[np.ndarray, np.ndarray]) -> Queries:
    """A float32 ``[n, dim]`` matrix from a ``.npy`` file or an array, or a list of token
    matrices from a ``.npz`` file (``tokens`` [T, dim], ``offsets`` [n + 1]) or a
    ``(tokens, offsets)`` pair."""
    if isinstance(source, tuple):
        return _split_sets(source[0], source[1], "queries")
    if isinstance(source, np.ndarray):
        return _as_matrix(source, "queries")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise LoadTestError(f"{path}: queries must be a .npy matrix or a .npz of token sets")
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LoadTestError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise LoadTestError(f"{path}: cannot read queries ({exc})") from None
    if suffix == ".npy":
        if not isinstance(loaded, np.ndarray):
            raise LoadTestError(f"{path}: not a .npy array")
        return _as_matrix(loaded, str(path))
    with loaded as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile) or not {"tokens", "offsets"} <= set(npz.files):
            raise LoadTestError(f"{path}: a .npz of queries must hold 'tokens' and 'offsets'")
        return _split_sets(npz["tokens"], npz["offsets"], str(path))


def _checked(queries: Queries, dim: int, multivector: bool, name: str) -> Queries:
    if multivector:
        if isinstance(queries, np.ndarray):
            raise LoadTestError(
                f"collection {name!r} is multi-vector: give queries as a .npz with 'tokens' "
                "and 'offsets'"
            )
        got = queries[0].shape[1]
    else:
        if not isinstance(queries, np.ndarray):
            raise LoadTestError(
                f"collection {name!r} is single-vector: give queries as a 2-D .npy matrix"
            )
        got = queries.shape[1]
    if got != dim:
        raise LoadTestError(f"queries have dimension {got}, collection {name!r} has {dim}")
    return queries


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows


# --- request bodies ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Where every search request goes, with which headers, and the bodies to cycle."""

    path: str
    headers: dict[str, str]
    bodies: list[bytes]


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _encode(config: LoadConfig, multivector: bool, chunk: Queries) -> bytes:
    """One request body for ``chunk`` (one query in single mode)."""
    fields = {"k": config.k, "params": config.params}
    if config.mode == "single":
        query = chunk[0]
        key = "vectors" if multivector else "vector"
        return _json({key: query.tolist(), **fields})
    if config.transport == "json":
        if multivector:
            return _json({"token_sets": [m.tolist() for m in chunk], **fields})
        return _json({"vectors": chunk.tolist(), **fields})  # type: ignore[union-attr]
    buf = io.BytesIO()
    if multivector:
        sets = list(chunk)
        offsets = np.zeros(len(sets) + 1, np.int64)
        np.cumsum([len(m) for m in sets], out=offsets[1:])
        np.savez(buf, tokens=np.concatenate(sets).astype(np.float32), offsets=offsets)
    else:
        np.save(buf, np.asarray(chunk, dtype=np.float32))
    return buf.getvalue()


def _plan(config: LoadConfig, dim: int, multivector: bool, queries: Queries | None) -> _Plan:
    base = f"/v1/collections/{quote(config.collection, safe='')}/search"
    headers = {"content-type": "application/json"}
    path = base if config.mode == "single" else f"{base}/batch"
    if config.transport == "binary":
        query_string: dict[str, Any] = {"k": config.k}
        if config.params:
            query_string["params"] = json.dumps(config.params, separators=(",", ":"))
        path = f"{path}?{urlencode(query_string)}"
        media = NPZ_MEDIA_TYPE if multivector else NPY_MEDIA_TYPE
        headers = {"content-type": media, "accept": NPZ_MEDIA_TYPE}
    per = config.queries_per_request
    needed = config.warmup + config.count if config.count is not None else MAX_BODIES
    limit = max(1, min(needed, MAX_BODIES))
    if queries is not None:
        n = len(queries)
        limit = min(limit, n // math.gcd(n, per))  # after that the bodies repeat
    rng = np.random.default_rng(config.seed)
    bodies: list[bytes] = []
    size = 0
    for i in range(limit):
        chunk: Queries
        if queries is None and multivector:
            lengths = rng.integers(RANDOM_TOKENS[0], RANDOM_TOKENS[1] + 1, per)
            chunk = [_unit_rows(rng, int(t), dim) for t in lengths]
        elif queries is None:
            chunk = _unit_rows(rng, per, dim)
        else:
            rows = (i * per + np.arange(per)) % len(queries)
            chunk = [queries[r] for r in rows] if multivector else queries[rows]  # type: ignore[index]
        bodies.append(_encode(config, multivector, chunk))
        size += len(bodies[-1])
        if size >= BODY_BUDGET:
            break
    return _Plan(path, headers, bodies)


# --- talking to the server -----------------------------------------------------------------


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


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


async def _collection_info(client: httpx.AsyncClient, config: LoadConfig) -> tuple[int, bool]:
    """The collection's ``(dim, multivector)``; fails with one line if it cannot be had."""
    path = f"/v1/collections/{quote(config.collection, safe='')}"
    try:
        response = await client.get(path)
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
            f"{config.url}: GET {path} did not answer a collection description"
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

    plan: _Plan
    count: int | None
    deadline: float
    offset: int  # where in the body cycle this phase starts
    t0: float
    recorder: _Recorder | None
    issued: int = 0


async def _worker(client: httpx.AsyncClient, phase: _Phase) -> None:
    plan, bodies = phase.plan, phase.plan.bodies
    while True:
        if phase.count is not None:
            if phase.issued >= phase.count:
                return
        elif time.perf_counter() >= phase.deadline:
            return
        body = bodies[(phase.offset + phase.issued) % len(bodies)]
        phase.issued += 1
        kind: str | None = None
        detail: Any = None
        begin = time.perf_counter()
        try:
            response = await client.post(plan.path, content=body, headers=plan.headers)
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
    admin: httpx.AsyncClient, config: LoadConfig, plan: ReloadPlan, t0: float, state: dict
) -> dict[str, Any]:
    delay = t0 + plan.at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    state["started"] = True
    path = f"/v1/collections/{quote(config.collection, safe='')}/reload"
    begin = time.perf_counter()
    status: int | None = None
    try:
        response = await admin.post(path, json={"path": plan.path})
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


async def arun_load(config: LoadConfig) -> LoadReport:
    """Run the load test described by ``config`` and summarise it."""
    queries = load_queries(config.queries) if config.queries is not None else None
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=config.url,
                headers=_auth(config.api_key),
                timeout=httpx.Timeout(config.timeout),
                limits=limits,
            )
        )
        dim, multivector = await _collection_info(client, config)
        if queries is not None:
            queries = _checked(queries, dim, multivector, config.collection)
        plan = _plan(config, dim, multivector, queries)
        if config.warmup:
            warm = _Phase(plan, config.warmup, math.inf, 0, time.perf_counter(), None)
            await _run_phase(client, config.concurrency, warm)

        admin = None
        if config.reloads:
            admin = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=config.url,
                    headers=_auth(config.admin_key or config.api_key),
                    timeout=httpx.Timeout(config.reload_timeout),
                )
            )
        recorder = _Recorder()
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        deadline = t0 + config.duration if config.duration is not None else math.inf
        reloads = []
        if admin is not None:
            for reload_plan in config.reloads:
                state = {"started": False}
                task = asyncio.create_task(_reload(admin, config, reload_plan, t0, state))
                reloads.append((reload_plan, state, task))
        phase = _Phase(plan, config.count, deadline, config.warmup, t0, recorder)
        try:
            await _run_phase(client, config.concurrency, phase)
        finally:
            elapsed = time.perf_counter() - t0
            for _, state, task in reloads:
                if not state["started"]:
                    task.cancel()
        events = []
        for reload_plan, state, task in reloads:
            if state["started"]:
                events.append(await task)
                continue
            with contextlib.suppress(asyncio.CancelledError):
                await task
            events.append(
                _reload_event(
                    reload_plan,
                    start_s=None,
                    seconds=None,
                    status=None,
                    ok=False,
                    message=f"not run: the load ended {elapsed:.2f} s after it began",
                )
            )
    meta = {
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
        "concurrency": config.concurrency,
        "warmup": config.warmup,
        "bound": {"count": config.count, "duration_s": config.duration},
    }
    return summarize(
        meta=meta,
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
