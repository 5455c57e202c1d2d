"""``glint-bench service``: the same index in process and through ``glint serve``, in one run.

What it measures (shared/BENCHMARKS.md, "Through the service"):

- **single-query latency**: p50/p99 of one query at a time, in process (``index.search`` on
  one row, 1 thread) and through REST with the typed client (``Client.search``, keep-alive)
  and with the load generator at concurrency 1 (raw JSON, no model parsing);
- **batch throughput**: QPS of the whole query set in process (all cores) against one binary
  batch request (``.npy`` in, ``.npz`` out) and the load generator's binary batches, with
  recall@10 of each so the ratio is taken at the same recall;
- **a load run**: ``--load-seconds`` at ``--load-concurrency`` clients through the load
  generator, with a reload to a copy of the index half way (zero errors expected), its p99
  and a PNG timeline;
- **memory per worker**: ``glint serve --workers N``; resident, proportional (PSS) and
  private memory of each worker from ``/proc/PID/smaps_rollup`` after traffic has touched
  both, against the index's bytes on disk.

The server runs as a subprocess on 127.0.0.1 with its default settings (JSON access logs at
``info`` to a file), as a deployment would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from glint.index import build_index, load_index
from glint.index.threads import limit_blas_threads

from .data import load_dataset, recall_at_10
from .machine import cpu_count, machine_line

__all__ = ["ServiceOptions", "markdown", "run_service", "write_results"]

Log = Callable[[str], None]


@dataclass
class ServiceOptions:
    dataset: Path
    out: Path
    spec: str = "hnsw:m=32,ef_construction=200,storage=lvq4x8"
    index: Path | None = None  # an index directory to serve instead of building ``spec``
    workdir: Path = Path("~/.cache/glint-bench/service")
    queries: str = "id"
    nq: int = 1000
    params: dict[str, Any] = field(default_factory=lambda: {"ef_search": 64})
    k: int = 10
    repeats: int = 5
    load_seconds: float = 60.0
    load_concurrency: int = 32
    workers: int = 2
    png: Path | None = None
    command: str = ""


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _glint() -> str:
    found = Path(sys.executable).parent / "glint"
    return str(found) if found.exists() else "glint"


@contextmanager
def serving(
    index_dir: Path, log_path: Path, *, workers: int = 1, timeout: float = 300.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``glint serve docs=INDEX`` on a free loopback port until the block ends."""
    import httpx

    port = _free_port()
    argv = [_glint(), "serve", f"docs={index_dir}", "--port", str(port)]
    argv += ["--workers", str(workers)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        # Each worker answers /readyz for itself, and each new connection may reach any of
        # them: wait for a run of ready answers on fresh connections.
        wanted, streak = 1 if workers == 1 else 20 * workers, 0
        while streak < wanted:
            if proc.poll() is not None:
                raise RuntimeError(f"glint serve exited: {log_path.read_text()[-2000:]}")
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            streak = streak + 1 if ready else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready after {timeout} s")
            if not ready:
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _memory(pid: int) -> dict[str, int]:
    """Bytes from /proc/PID/smaps_rollup: Rss, Pss, shared and private pages."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {
        "rss": out.get("Rss", 0),
        "pss": out.get("Pss", 0),
        "shared": out.get("Shared_Clean", 0) + out.get("Shared_Dirty", 0),
        "private": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0),
    }


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes under ``pid`` (not multiprocessing's resource tracker)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids.extend(int(p) for p in (task / "children").read_text().split())
    cmdline = {k: Path(f"/proc/{k}/cmdline").read_bytes() for k in kids}
    return [k for k in kids if b"resource_tracker" not in cmdline[k]]


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _index_dir(opts: ServiceOptions, log: Log) -> Path:
    if opts.index is not None:
        return opts.index
    workdir = opts.workdir.expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(opts.dataset, opts.queries, nq=1)
    name = f"{dataset.name}-{opts.spec.replace(':', '_').replace(',', '_')}-{dataset.metric}"
    target = workdir / name
    if not (target / "manifest.json").exists():
        log(f"building {opts.spec} on {dataset.name} into {target}")
        started = time.perf_counter()
        build_index(dataset.base, opts.spec, dataset.metric, threads=cpu_count()).save(target)
        log(f"built in {time.perf_counter() - started:.1f} s")
    return target


def _in_process(
    index_dir: Path, queries: np.ndarray, opts: ServiceOptions, log: Log
) -> dict[str, Any]:
    index = load_index(index_dir)
    index.warm()
    index.search(queries[:10], opts.k, threads=1, **opts.params)
    latencies = []
    for row in queries:
        started = time.perf_counter()
        index.search(row[None, :], opts.k, threads=1, **opts.params)
        latencies.append((time.perf_counter() - started) * 1000.0)
    seconds = []
    ids = None
    for _ in range(opts.repeats):
        started = time.perf_counter()
        ids, _ = index.search(queries, opts.k, threads=cpu_count(), **opts.params)
        seconds.append(time.perf_counter() - started)
    qps = len(queries) / statistics.median(seconds)
    log(f"in process: single p50 {_pct(latencies, 50):.3f} ms, batch {qps:,.0f} QPS")
    index.close()
    return {
        "single_p50_ms": _pct(latencies, 50),
        "single_p99_ms": _pct(latencies, 99),
        "batch_qps": qps,
        "batch_seconds": seconds,
        "ids": ids,
    }


def _rest(url: str, queries: np.ndarray, opts: ServiceOptions, log: Log) -> dict[str, Any]:
    from glint.client import Client

    with Client(url, timeout=120) as client:
        for row in queries[:20]:
            client.search("docs", row, k=opts.k, params=opts.params)
        latencies, single_ids = [], []
        for row in queries:
            started = time.perf_counter()
            hits = client.search("docs", row, k=opts.k, params=opts.params)
            latencies.append((time.perf_counter() - started) * 1000.0)
            single_ids.append([h.id for h in hits] + [-1] * (opts.k - len(hits)))
        seconds = []
        ids = None
        for _ in range(opts.repeats):
            started = time.perf_counter()
            batch = client.search_batch("docs", queries, k=opts.k, params=opts.params)
            seconds.append(time.perf_counter() - started)
            ids = batch.ids
    qps = len(queries) / statistics.median(seconds)
    log(f"REST: single p50 {_pct(latencies, 50):.3f} ms, binary batch {qps:,.0f} QPS")
    return {
        "single_p50_ms": _pct(latencies, 50),
        "single_p99_ms": _pct(latencies, 99),
        "single_ids": np.asarray(single_ids),
        "batch_qps": qps,
        "batch_seconds": seconds,
        "ids": ids,
    }


def _raw(url: str, queries: np.ndarray, opts: ServiceOptions, log_path: Path) -> dict[str, Any]:
    """One query at a time over one keep-alive connection with the standard library's
    ``http.client`` and pre-encoded bodies: the service's latency with little client cost.
    The server's own time for the same requests comes from its access log (request ids)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    path = "/v1/collections/docs/search"
    bodies = [
        json.dumps({"vector": row.tolist(), "k": opts.k, "params": opts.params}).encode()
        for row in queries
    ]
    latencies = []
    for i, body in enumerate([*bodies[:20], *bodies]):
        headers = {"content-type": "application/json", "x-request-id": f"bench-raw-{i}"}
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"raw search answered {response.status}")
        if i >= 20:
            latencies.append((time.perf_counter() - started) * 1000.0)
    conn.close()
    wanted = {f"bench-raw-{i}" for i in range(20, 20 + len(bodies))}
    server: list[float] = []
    deadline = time.monotonic() + 30
    while len(server) < len(wanted) and time.monotonic() < deadline:
        server = [
            record["duration_ms"]
            for line in log_path.read_text().splitlines()
            if line.startswith("{") and (record := json.loads(line)).get("request_id") in wanted
        ]
        time.sleep(0.1)
    return {
        "raw_p50_ms": _pct(latencies, 50),
        "raw_p99_ms": _pct(latencies, 99),
        "server_p50_ms": _pct(server, 50) if server else None,
        "server_p99_ms": _pct(server, 99) if server else None,
    }


def _load(url: str, queries: np.ndarray, opts: ServiceOptions, **kw: Any) -> dict[str, Any]:
    from glint.loadtest import LoadConfig, run_load

    config = LoadConfig(
        url, "docs", k=opts.k, params=dict(opts.params), queries=queries, timeout=120, **kw
    )
    return run_load(config).to_dict()


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("mode", "transport", "batch", "concurrency", "requests", "ok", "duration_s")
    out = {key: report[key] for key in keep}
    out.update(
        errors=report["errors"]["total"],
        requests_per_s=report["requests_per_s"],
        queries_per_s=report["queries_per_s"],
        latency_ms=report["latency_ms"],
        events=report.get("events", []),
    )
    return out


def run_service(opts: ServiceOptions, log: Log) -> dict[str, Any]:
    limit_blas_threads(1)
    dataset = load_dataset(opts.dataset, opts.queries, nq=opts.nq)
    queries = dataset.queries
    index_dir = _index_dir(opts, log)
    workdir = opts.workdir.expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    twin = workdir / "reload-copy"
    if twin.exists():
        shutil.rmtree(twin)
    shutil.copytree(index_dir, twin)  # the reload target: the same index in a new directory

    def recall(ids: np.ndarray) -> float:
        return recall_at_10(ids, dataset.gt, dataset.base, queries, dataset.metric)

    results: dict[str, Any] = {
        "schema": "glint-bench-service/1",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_line(),
        "command": opts.command,
        "dataset": dataset.name,
        "queries": f"{opts.queries} ({len(queries)})",
        "metric": dataset.metric,
        "index": str(index_dir),
        "spec": load_index(index_dir).spec,
        "params": opts.params,
        "disk_bytes": _disk_bytes(index_dir),
    }
    inproc = _in_process(index_dir, queries, opts, log)
    inproc["recall"] = recall(inproc.pop("ids"))
    results["in_process"] = inproc
    with serving(index_dir, workdir / "serve.log") as (url, proc):
        rest = _rest(url, queries, opts, log)
        rest["single_recall"] = recall(rest.pop("single_ids"))
        rest["recall"] = recall(np.asarray(rest.pop("ids")))
        rest.update(_raw(url, queries, opts, workdir / "serve.log"))
        log(
            f"REST raw http.client: p50 {rest['raw_p50_ms']:.3f} ms, server side "
            f"{rest['server_p50_ms']:.3f} ms"
        )
        results["rest"] = rest
        single = _load(url, queries, opts, concurrency=1, count=len(queries), warmup=50)
        results["loadgen_single"] = _summary(single)
        log(f"loadgen single c=1: p50 {single['latency_ms']['p50']:.3f} ms")
        batch = _load(
            url,
            queries,
            opts,
            mode="batch",
            transport="binary",
            batch=100,
            concurrency=2,
            count=10 * len(queries) // 100,
            warmup=2,
        )
        results["loadgen_batch"] = _summary(batch)
        log(f"loadgen binary batches of 100, c=2: {batch['queries_per_s']:,.0f} QPS")
        from glint.loadtest import ReloadPlan

        reload_at = opts.load_seconds / 2
        log(
            f"load run: {opts.load_seconds:g} s at {opts.load_concurrency} clients, reload at "
            f"{reload_at:g} s"
        )
        run = _load(
            url,
            queries,
            opts,
            concurrency=opts.load_concurrency,
            duration=opts.load_seconds,
            reloads=[ReloadPlan(at=reload_at, path=str(twin))],
        )
        results["load_run"] = _summary(run)
        results["server_rss_1_worker"] = _memory(proc.pid)
        if opts.png is not None:
            from glint.loadtest import write_png

            write_png(run, opts.png)
        log(
            f"load run: {run['requests']} requests, {run['errors']['total']} errors, "
            f"p99 {run['latency_ms']['p99']:.2f} ms"
        )
    if opts.workers > 1:
        with serving(index_dir, workdir / "serve-workers.log", workers=opts.workers) as (
            url,
            proc,
        ):
            _load(url, queries, opts, concurrency=8, duration=10.0)
            workers = [_memory(pid) for pid in _workers(proc.pid)]
            results["workers"] = {"count": len(workers), "per_worker": workers}
            log(f"{len(workers)} workers: RSS {[w['rss'] >> 20 for w in workers]} MiB")
    return results


def _ms(value: float) -> str:
    return f"{value:.3f}"


def _mib(value: int) -> str:
    return f"{value / 2**20:,.1f}"


def markdown(results: dict[str, Any]) -> str:
    """The ``docs/benchmarks.md`` section for one ``glint-bench service`` run."""
    inproc, rest = results["in_process"], results["rest"]
    single, batch, run = results["loadgen_single"], results["loadgen_batch"], results["load_run"]
    lines = [
        f"Machine: {results['machine']}. Date: {results['date']}.",
        f"Dataset `{results['dataset']}`, queries {results['queries']}, metric "
        f"{results['metric']}; index `{results['spec']}` with {json.dumps(results['params'])}.",
        "",
        f"Command: `{results['command']}`",
        "",
        "Single-query latency (one query at a time, 1 search thread):",
        "",
        "| path | p50 ms | p99 ms | recall@10 |",
        "|---|---|---|---|",
        f"| in process (`index.search`, one row) | {_ms(inproc['single_p50_ms'])} | "
        f"{_ms(inproc['single_p99_ms'])} | {inproc['recall']:.4f} |",
        f"| REST, typed client (`Client.search`) | {_ms(rest['single_p50_ms'])} | "
        f"{_ms(rest['single_p99_ms'])} | {rest['single_recall']:.4f} |",
        f"| REST, load generator (httpx async), 1 client | {_ms(single['latency_ms']['p50'])} | "
        f"{_ms(single['latency_ms']['p99'])} | — |",
        f"| REST, keep-alive `http.client`, pre-encoded bodies | {_ms(rest['raw_p50_ms'])} | "
        f"{_ms(rest['raw_p99_ms'])} | — |",
        f"| server side of those requests (access log) | {_ms(rest['server_p50_ms'])} | "
        f"{_ms(rest['server_p99_ms'])} | — |",
        "",
        "REST p50 − in-process p50: "
        f"typed client {rest['single_p50_ms'] - inproc['single_p50_ms']:+.3f} ms, "
        f"`http.client` {rest['raw_p50_ms'] - inproc['single_p50_ms']:+.3f} ms, "
        f"load generator {single['latency_ms']['p50'] - inproc['single_p50_ms']:+.3f} ms, "
        f"server side {rest['server_p50_ms'] - inproc['single_p50_ms']:+.3f} ms.",
        "",
        "Batch throughput (all cores on the server side):",
        "",
        "| path | QPS | × in process | recall@10 |",
        "|---|---|---|---|",
        f"| in process (`index.search`, {len_q(results)} queries) | {inproc['batch_qps']:,.0f} "
        f"| 1.00× | {inproc['recall']:.4f} |",
        f"| REST binary batch, one request of {len_q(results)} (`Client.search_batch`) | "
        f"{rest['batch_qps']:,.0f} | {rest['batch_qps'] / inproc['batch_qps']:.2f}× | "
        f"{rest['recall']:.4f} |",
        f"| REST binary batches of {batch['batch']}, {batch['concurrency']} clients "
        f"(load generator) | {batch['queries_per_s']:,.0f} | "
        f"{batch['queries_per_s'] / inproc['batch_qps']:.2f}× | — |",
        "",
        f"Load run: {run['duration_s']:.1f} s, {run['concurrency']} clients, single JSON "
        "queries, a reload to a copy of the index half way:",
        "",
        "| requests | errors | requests/s | p50 ms | p95 ms | p99 ms | max ms | reload |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lat = run["latency_ms"]
    events = run["events"]
    reload = (
        "; ".join(
            f"at {e['start_s']:.1f} s, HTTP {e['status']}, {e['seconds']:.2f} s" for e in events
        )
        or "—"
    )
    lines.append(
        f"| {run['requests']:,} | {run['errors']} | {run['requests_per_s']:,.0f} | "
        f"{_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} | "
        f"{reload} |"
    )
    mem = results["server_rss_1_worker"]
    lines += [
        "",
        f"Memory (index {_mib(results['disk_bytes'])} MiB on disk, memory-mapped):",
        "",
        "| server | RSS MiB | PSS MiB | shared MiB | private MiB |",
        "|---|---|---|---|---|",
        f"| 1 worker (after the runs above) | {_mib(mem['rss'])} | {_mib(mem['pss'])} | "
        f"{_mib(mem['shared'])} | {_mib(mem['private'])} |",
    ]
    for i, worker in enumerate(results.get("workers", {}).get("per_worker", []), start=1):
        lines.append(
            f"| `--workers {results['workers']['count']}`, worker {i} | {_mib(worker['rss'])} | "
            f"{_mib(worker['pss'])} | {_mib(worker['shared'])} | {_mib(worker['private'])} |"
        )
    return "\n".join(lines) + "\n"


def len_q(results: dict[str, Any]) -> str:
    return results["queries"].split("(")[-1].rstrip(")")


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=_plain))
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
