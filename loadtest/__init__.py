"""A load generator for a running glint server: ``glint loadtest`` and its Python API.

::

    from glint.loadtest import LoadConfig, run_load

    report = run_load(LoadConfig("http://127.0.0.1:8000", "docs", concurrency=8, count=2000))
    print(report.latency_ms["p99"], report.requests_per_s)

Async workers share one ``httpx.AsyncClient`` (a keep-alive pool of ``concurrency``
connections) and send pre-encoded search requests (single JSON queries, or JSON or binary
batches); every request's latency and outcome is recorded and summarised in a
:class:`LoadReport` (schema ``glint-loadtest/1``), which :func:`write_json` and
:func:`write_png` save. An admin ``reload`` can be fired mid-run to watch a hot swap.

The names are resolved lazily, so building the ``glint`` parser does not import httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import LoadTestError, UsageError
    from .report import SCHEMA, LoadReport, write_json, write_png
    from .runner import LoadConfig, ReloadPlan, arun_load, load_queries, run_load

__all__ = [
    "SCHEMA",
    "LoadConfig",
    "LoadReport",
    "LoadTestError",
    "ReloadPlan",
    "UsageError",
    "arun_load",
    "load_queries",
    "run_load",
    "write_json",
    "write_png",
]

_HOME = {
    "SCHEMA": "report",
    "LoadConfig": "runner",
    "LoadReport": "report",
    "LoadTestError": "errors",
    "ReloadPlan": "runner",
    "UsageError": "errors",
    "arun_load": "runner",
    "load_queries": "runner",
    "run_load": "runner",
    "write_json": "report",
    "write_png": "report",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
