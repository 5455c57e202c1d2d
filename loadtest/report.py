"""The load test report ``glint-loadtest/1``: a summary of every recorded request, saved as
JSON and drawn as a PNG.

A report is a JSON object::

    {"schema": "glint-loadtest/1", "started_at": "2026-11-22T21:00:00+00:00",
     "url": "http://127.0.0.1:8000", "collection": "docs", "dim": 384, "multivector": false,
     "mode": "batch", "transport": "binary", "batch": 32, "k": 10, "params": {"ef": 64},
     "concurrency": 8, "warmup": 50, "bound": {"count": 1000, "duration_s": null},
     "requests": 1000, "ok": 998, "queries": 31936,
     "errors": {"total": 2, "by_kind": {"http_503": 2}},
     "error_samples": [{"t": 3.52, "kind": "http_503", "message": "..."}],
     "duration_s": 12.3, "requests_per_s": 81.3, "queries_per_s": 2596.4,
     "latency_ms": {"p50": ..., "p95": ..., "p99": ..., "max": ..., "mean": ...},
     "histogram_ms": {"edges": [...], "counts": [...]},
     "timeline": [{"t": 0, "seconds": 1.0, "requests": 80, "errors": 0, "p50_ms": ...,
                   "p99_ms": ...}, ...],
     "events": [{"kind": "reload", "path": "...", "at_s": 5.0, "start_s": 5.0, "seconds": 0.8,
                 "status": 200, "ok": true, "message": "..."}]}

- ``requests``/``ok``: measured requests (warm-up excluded) and those answered 2xx;
  ``queries``: the queries those 2xx answers covered (``ok`` times ``batch``).
- ``errors.by_kind``: ``http_<status>`` for a non-2xx answer, else the transport exception's
  class name (``ConnectError``, ``ReadTimeout``...); ``error_samples``: the first few
  messages of each kind, ``t`` seconds after the measured phase began.
- ``duration_s``: from the first measured request to the last answer; the rates divide by it.
- ``latency_ms``: over every measured request, failed ones included, each timed around the
  whole exchange (sending, waiting, reading the body); ``histogram_ms``: their counts in
  log-spaced bins.
- ``timeline``: one entry per second of the run, by the second in which requests completed;
  ``seconds`` is the entry's width (1, less for the last one), ``p50_ms``/``p99_ms`` are
  ``null`` for a second with none.
- ``events``: the admin reloads fired during the run; ``start_s`` is ``null`` (and ``ok``
  false) for a reload whose time came after the load had finished.
- ``filter``: the filter every search carried (``--filter``), ``null`` for none.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LoadTestError

__all__ = ["SCHEMA", "LoadReport", "summarize", "write_json", "write_png"]

SCHEMA = "glint-loadtest/1"
_HISTOGRAM_BINS = 40
_MIN_BIN = 0.25  # seconds


@dataclass
class LoadReport:
    """One load test's outcome; :meth:`to_dict` gives the JSON document."""

    started_at: str
    url: str
    collection: str
    dim: int
    multivector: bool
    mode: str
    transport: str
    batch: int
    k: int
    params: dict[str, Any]
    concurrency: int
    warmup: int
    bound: dict[str, Any]
    requests: int
    ok: int
    queries: int
    errors: dict[str, Any]
    error_samples: list[dict[str, Any]]
    duration_s: float
    requests_per_s: float
    queries_per_s: float
    latency_ms: dict[str, float | None]
    histogram_ms: dict[str, list[Any]]
    timeline: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    filter: dict[str, Any] | None = None
    schema: str = SCHEMA

    @property
    def failed(self) -> bool:
        """Whether any request failed or any reload did not succeed."""
        return self.errors["total"] > 0 or any(not e.get("ok") for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema": data.pop("schema"), **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadReport:
        if data.get("schema") != SCHEMA:
            raise LoadTestError(f"not a {SCHEMA} report (schema {data.get('schema')!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def _ms(value: float) -> float:
    return round(float(value) * 1000.0, 3)


def _latency(seconds: np.ndarray) -> dict[str, float | None]:
    if seconds.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
    return {
        "p50": _ms(p50),
        "p95": _ms(p95),
        "p99": _ms(p99),
        "max": _ms(seconds.max()),
        "mean": _ms(seconds.mean()),
    }


def _histogram(seconds: np.ndarray) -> dict[str, list[Any]]:
    if seconds.size == 0:
        return {"edges": [], "counts": []}
    ms = seconds * 1000.0
    low, high = float(ms.min()), float(ms.max())
    low = max(low, 1e-3)
    if high <= low * 1.001:
        edges = np.array([low * 0.9, high * 1.1])
    else:
        edges = np.geomspace(low, high * 1.000001, _HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(np.clip(ms, edges[0], edges[-1]), bins=edges)
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}


def _timeline(
    ends: np.ndarray, seconds: np.ndarray, failed: np.ndarray, duration: float
) -> list[dict[str, Any]]:
    bins = max(1, math.ceil(duration))
    which = np.clip(np.floor(ends).astype(np.int64), 0, bins - 1)
    rows: list[dict[str, Any]] = []
    for t in range(bins):
        mask = which == t
        lat = seconds[mask]
        p50, p99 = np.percentile(lat, [50, 99]) if lat.size else (None, None)
        rows.append(
            {
                "t": t,
                "seconds": round(min(1.0, duration - t), 4),
                "requests": int(mask.sum()),
                "errors": int(failed[mask].sum()),
                "p50_ms": None if p50 is None else _ms(p50),
                "p99_ms": None if p99 is None else _ms(p99),
            }
        )
    return rows


def summarize(
    *,
    meta: Mapping[str, Any],
    starts: Sequence[float],
    latencies: Sequence[float],
    kinds: Sequence[str | None],
    samples: Sequence[Mapping[str, Any]],
    duration: float,
    queries_per_request: int,
    events: Sequence[Mapping[str, Any]] = (),
) -> LoadReport:
    """Build the report from the raw records: per request, its start (seconds after the
    measured phase began), its latency in seconds and its error kind (``None`` if 2xx).
    ``meta`` holds the descriptive fields (url, collection, mode...)."""
    start = np.asarray(starts, dtype=np.float64)
    seconds = np.asarray(latencies, dtype=np.float64)
    failed = np.array([kind is not None for kind in kinds], dtype=bool)
    by_kind: dict[str, int] = {}
    for kind in kinds:
        if kind is not None:
            by_kind[kind] = by_kind.get(kind, 0) + 1
    requests = int(seconds.size)
    ok = requests - int(failed.sum())
    queries = ok * queries_per_request
    duration = max(float(duration), 1e-9)
    return LoadReport(
        **meta,
        requests=requests,
        ok=ok,
        queries=queries,
        errors={"total": requests - ok, "by_kind": dict(sorted(by_kind.items()))},
        error_samples=[dict(s) for s in samples],
        duration_s=round(duration, 4),
        requests_per_s=round(requests / duration, 2),
        queries_per_s=round(queries / duration, 2),
        latency_ms=_latency(seconds),
        histogram_ms=_histogram(seconds),
        timeline=_timeline(start + seconds, seconds, failed, duration),
        events=[dict(e) for e in events],
    )


def _as_dict(report: LoadReport | Mapping[str, Any]) -> dict[str, Any]:
    return report.to_dict() if isinstance(report, LoadReport) else dict(report)


def write_json(report: LoadReport | Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report atomically (a temporary file renamed over ``path``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(_as_dict(report), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_png(report: LoadReport | Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Latency percentiles and throughput per second (reloads as vertical lines and shaded
    spans) and the latency histogram, in one PNG. Needs matplotlib (``glint-vector[loadtest]``)."""
    try:
        import matplotlib
    except ImportError:
        raise LoadTestError(
            "matplotlib is not installed: install 'glint-vector[loadtest]' for --png"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = _as_dict(report)
    timeline = data["timeline"]
    t = [row["t"] + row.get("seconds", 1.0) / 2 for row in timeline]  # mid-bin
    fig, (lat_ax, rate_ax, hist_ax) = plt.subplots(3, 1, figsize=(10, 10), dpi=100)
    for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
        values = [np.nan if row[key] is None else row[key] for row in timeline]
        lat_ax.plot(t, values, style, marker=".", label=key.removesuffix("_ms"))
    lat_ax.set_ylabel("latency per second (ms)")
    lat_ax.set_ylim(bottom=0)
    # rates per second of each bin; a last bin shorter than _MIN_BIN s (the drain) is left out
    rated = [row for row in timeline if row.get("seconds", 1.0) >= _MIN_BIN]
    rate_t = [row["t"] + row.get("seconds", 1.0) / 2 for row in rated]
    for key, colour in (("requests", "tab:blue"), ("errors", "tab:red")):
        rates = [row[key] / row.get("seconds", 1.0) for row in rated]
        rate_ax.plot(rate_t, rates, "-", marker=".", color=colour, label=f"{key}/s")
    rate_ax.set_ylabel("per second")
    rate_ax.set_xlabel("seconds since start")
    rate_ax.set_ylim(bottom=0)
    for ax in (lat_ax, rate_ax):
        labelled = False
        for event in data.get("events", []):
            if event.get("start_s") is None:
                continue
            colour = "tab:green" if event.get("ok") else "tab:red"
            begin = event["start_s"]
            label = None if labelled else f"{event.get('kind', 'event')} ({event.get('status')})"
            ax.axvline(begin, color=colour, linestyle=":", label=label)
            ax.axvspan(begin, begin + (event.get("seconds") or 0.0), color=colour, alpha=0.15)
            labelled = True
        ax.set_xlim(0, max(1.0, data["duration_s"]))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    edges, counts = data["histogram_ms"]["edges"], data["histogram_ms"]["counts"]
    if counts:
        hist_ax.stairs(counts, edges, fill=True, alpha=0.6)
        if edges[-1] / max(edges[0], 1e-9) > 10:
            hist_ax.set_xscale("log")
    for name, style in (("p50", "-"), ("p99", "--")):
        value = data["latency_ms"].get(name)
        if value is not None:
            hist_ax.axvline(value, color="black", linestyle=style, label=f"{name} {value:.2f} ms")
    hist_ax.set_xlabel("latency (ms)")
    hist_ax.set_ylabel("requests")
    hist_ax.grid(alpha=0.3)
    if data["latency_ms"].get("p50") is not None:
        hist_ax.legend(loc="upper right")
    batch = f", batch {data['batch']}" if data["mode"] == "batch" else ""
    fig.suptitle(
        f"{data['collection']} @ {data['url']}: {data['mode']} {data['transport']}{batch}, "
        f"concurrency {data['concurrency']}; {data['requests_per_s']:.0f} req/s, "
        f"{data['errors']['total']} errors"
    )
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}.png")
    try:
        fig.savefig(tmp, format="png")
        tmp.replace(target)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return target
