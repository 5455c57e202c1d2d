"""Metrics, request ids and structured logs.

One pure ASGI middleware does the per-request work: it gives every request an id (the
client's ``X-Request-ID`` when it is sane, else a fresh one), echoes it in the response,
times the request into the Prometheus histograms and writes one access-log record. Log
records are JSON lines carrying the request id of the request they were written for; the
``Authorization`` header is never read here, so keys cannot reach a log.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = [
    "JsonFormatter",
    "Metrics",
    "ObservabilityMiddleware",
    "configure_logging",
    "current_request_id",
    "json_formatter",
]

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_REQUEST_ID = contextvars.ContextVar[str]("glint_request_id", default="")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("glint.access")
errors_log = logging.getLogger("glint.service.errors")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def current_request_id() -> str:
    """The id of the request being served by this task ('' outside a request)."""
    return _REQUEST_ID.get()


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        route = ["method", "route", "collection"]
        self.requests = Counter(
            "glint_requests",
            "HTTP requests by route, collection and status",
            [*route, "status"],
            registry=r,
        )
        self.errors = Counter(
            "glint_request_errors",
            "HTTP requests answered 4xx or 5xx",
            [*route, "status"],
            registry=r,
        )
        self.latency = Histogram(
            "glint_request_seconds",
            "HTTP request latency by route and collection",
            route,
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("glint_requests_in_flight", "Requests being served", registry=r)
        self.queries = Counter(
            "glint_queries",
            "Queries searched (a batch counts each query)",
            ["collection"],
            registry=r,
        )
        # glint_queries split by whether a filter restricted the search: a counter of its own,
        # so that glint_queries keeps the one series per collection it has always had
        self.queries_by_filter = Counter(
            "glint_search_queries",
            "Queries searched, by whether a filter restricted them (a batch counts each query)",
            ["collection", "filtered"],
            registry=r,
        )
        self.timeouts = Counter(
            "glint_search_timeouts",
            "Requests answered 503 at the request timeout (body, parse, queue or search)",
            registry=r,
        )
        self.admission_rejections = Counter(
            "glint_admission_rejections",
            "Requests answered 503 unread: their body would pass GLINT_MAX_INFLIGHT_BYTES",
            registry=r,
        )
        self.inflight_bytes = Gauge(
            "glint_inflight_body_bytes",
            "Memory charged to the request bodies in flight (the admission budget in use)",
            registry=r,
        )
        self.admin = Counter(
            "glint_admin_operations",
            "Loads, reloads and unloads by outcome",
            ["action", "outcome"],
            registry=r,
        )
        self.collections = Gauge("glint_collections_loaded", "Collections loaded", registry=r)
        self.busy = Gauge(
            "glint_collections_busy", "Collections being loaded, swapped or unloaded", registry=r
        )
        self.index_bytes = Gauge(
            "glint_index_memory_bytes",
            "Bytes an index holds in memory",
            ["collection"],
            registry=r,
        )
        self.disk_bytes = Gauge(
            "glint_index_disk_bytes", "Bytes of an index's files", ["collection"], registry=r
        )
        self.vectors = Gauge(
            "glint_index_vectors", "Vectors in an index", ["collection"], registry=r
        )

    def count_queries(self, collection: str, n: int, *, filtered: bool) -> None:
        """Count ``n`` queries searched in ``collection``, with or without a filter (the
        label says which, never what the filter was)."""
        self.queries.labels(collection).inc(n)
        self.queries_by_filter.labels(collection, "true" if filtered else "false").inc(n)


class ObservabilityMiddleware:
    """Request id, metrics and the access log for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, collections: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.collections = collections  # callable -> names of loaded collections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = _REQUEST_ID.set(request_id)
        status = 500
        header = (b"x-request-id", request_id.encode())

        status_sent = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by Starlette's outer error middleware, so the 500
            # carries the request id, and so does its log record.
            errors_log.exception(
                "unhandled error on %s %r",
                scope["method"],
                scope.get("path"),
                extra={"request_id": request_id},
            )
            if status_sent:
                raise
            await error_response(500, "internal", "internal server error")(
                scope, receive, send_with_id
            )
        finally:
            seconds = time.perf_counter() - started
            self.metrics.in_flight.dec()
            self._record(scope, status, seconds, request_id)
            _REQUEST_ID.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        name = scope.get("path_params", {}).get("name", "")
        # only loaded collections become label values: unknown names must not grow the set
        collection = name if name and name in self.collections() else ""
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        labels = (method, route, collection)
        self.metrics.latency.labels(*labels).observe(seconds)
        self.metrics.requests.labels(*labels, str(status)).inc()
        if status >= 400:
            self.metrics.errors.labels(*labels, str(status)).inc()
        client = scope.get("client")
        access_log.info(
            "%s %r %d",  # %r: a decoded path may hold control characters
            method,
            scope.get("path", ""),
            status,
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": scope.get("path", ""),
                "route": route,
                "collection": name or None,
                "status": status,
                "duration_ms": round(seconds * 1000.0, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )


_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def json_formatter() -> JsonFormatter:
    """The formatter of ``glint serve``'s JSON logs. Building it also sends Python warnings
    (numba's, numpy's) through logging, so that they become JSON lines too rather than
    multi-line text: uvicorn builds it in every worker process from the same dict config."""
    logging.captureWarnings(True)
    return JsonFormatter()


def configure_logging(level: str = "info", fmt: str = "json") -> dict[str, Any]:
    """Logging for ``glint serve``: every record, glint's, uvicorn's and any library's (the
    root logger's: faiss's loader logs at import), through one handler on stderr, as JSON lines
    (one per record: newlines in a message are escaped) or text. Returns the dict config (also
    given to uvicorn, whose own access log is off: glint writes one record per request with
    its id)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.json_formatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"glint": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "glint",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "glint": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # which CPU builds faiss tried and could not load: noise at INFO, kept for DEBUG
            "faiss.loader": {"level": "WARNING" if level.upper() == "INFO" else level.upper()},
        },
        # the other libraries' records; this replaces any handler set up before (the text
        # one of `glint`'s basicConfig), so no record reaches stderr in another format
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }
    logging.config.dictConfig(config)
    return config
