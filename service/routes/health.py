"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from glint.client.models import Health
from glint.service.deps import MetricsDep, RegistryDep
from glint.service.registry import Registry

router = APIRouter(tags=["health"])


def _health(request: Request, registry: Registry) -> tuple[bool, Health]:
    """Worked out on each call: ready once no start-up load is pending or failed (a failed
    one that an admin ``load`` has since brought in counts as done), until shutdown."""
    failed = registry.failed()
    busy = registry.busy()
    stopping = bool(getattr(request.app.state, "stopping", False))
    ready = registry.settled() and not stopping
    status: Literal["ok", "loading", "unavailable"] = (
        "ok" if ready else ("unavailable" if failed or stopping else "loading")
    )
    body = Health(status=status, collections=len(registry.names()), loading=busy, failed=failed)
    return ready, body


@router.get("/healthz", response_model=Health)
async def healthz(request: Request, registry: RegistryDep) -> Health:
    """The process is up and answering (200 even while indices load)."""
    _, body = _health(request, registry)
    return body.model_copy(update={"status": "ok"})


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, registry: RegistryDep) -> Response:
    """200 once every configured index is loaded and searchable; 503 while start-up loads run
    (``status: loading``), after one failed (``unavailable``, with ``failed``) and during
    shutdown. A swap does not make the server unready: the old index serves until the new
    one takes over; ``loading`` names the collections being swapped."""
    ready, body = _health(request, registry)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(registry: RegistryDep, metrics: MetricsDep) -> Response:
    """Prometheus text exposition."""
    collections = registry.all()
    metrics.collections.set(len(collections))
    metrics.busy.set(len(registry.busy()))
    for gauge in (metrics.index_bytes, metrics.disk_bytes, metrics.vectors):
        gauge.clear()  # unloaded collections leave the exposition
    for collection in collections:
        metrics.index_bytes.labels(collection.name).set(collection.index.memory_bytes)
        metrics.disk_bytes.labels(collection.name).set(collection.index.stats()["disk_bytes"])
        metrics.vectors.labels(collection.name).set(collection.index.count)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
