"""Prometheus metrics, one registry per app (no module-level singletons)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "install_metrics_middleware"]

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "glint_requests",
            "HTTP requests by route, collection and status",
            ["method", "route", "collection", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "glint_request_seconds",
            "HTTP request latency by route and collection",
            ["method", "route", "collection"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.queries = Counter(
            "glint_queries",
            "Queries searched (a batch counts each query)",
            ["collection"],
            registry=self.registry,
        )
        self.collections = Gauge(
            "glint_collections_loaded", "Collections loaded", registry=self.registry
        )
        self.index_bytes = Gauge(
            "glint_index_memory_bytes",
            "Bytes an index holds in memory",
            ["collection"],
            registry=self.registry,
        )
        self.vectors = Gauge(
            "glint_index_vectors", "Vectors in an index", ["collection"], registry=self.registry
        )


def install_metrics_middleware(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def _observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            name = request.scope.get("path_params", {}).get("name", "")
            # only loaded collections become label values: unknown names must not grow the set
            collection = name if name in request.app.state.registry.names() else ""
            labels = (request.method, template, collection)
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)
            metrics.requests.labels(*labels, str(status)).inc()
