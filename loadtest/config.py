"""What a load test sends, how hard and for how long: :class:`LoadConfig` and its reloads."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from glint.wire.filters import Filter, filter_json

from .errors import UsageError

__all__ = ["DEFAULT_COUNT", "LoadConfig", "Mode", "QuerySource", "ReloadPlan", "Transport"]

DEFAULT_COUNT = 1000

Mode = Literal["single", "batch"]
Transport = Literal["json", "binary"]
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
    in batch mode (single mode sends one). ``filter`` (a :class:`~glint.wire.filters.Filter`
    or its JSON object) goes with every search; it is kept as the JSON object it is sent as
    (None: no filter, or one without clauses). ``api_key`` is sent as a bearer token with
    every search; reloads use ``admin_key`` (or else ``api_key``).
    """

    url: str
    collection: str
    mode: Mode = "single"
    transport: Transport = "json"
    batch: int = 32
    k: int = 10
    params: Mapping[str, Any] = field(default_factory=dict)
    filter: Filter | Mapping[str, Any] | None = None
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
        object.__setattr__(self, "filter", _filter_json(self.filter))
        object.__setattr__(self, "reloads", tuple(sorted(self.reloads, key=lambda r: r.at)))

    @property
    def queries_per_request(self) -> int:
        return self.batch if self.mode == "batch" else 1


def _filter_json(value: Filter | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A filter as the JSON object to send (None for none, or one without clauses), or a
    UsageError naming the place where it is malformed."""
    try:
        return filter_json(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
