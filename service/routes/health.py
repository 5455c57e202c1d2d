"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from glint.client.models import Health

from ..deps import MetricsDep, RegistryDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(registry: RegistryDep) -> Health:
    """The process is up and answering."""
    return Health(status="ok", collections=len(registry.names()))


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, registry: RegistryDep) -> Response:
    """Every configured index is loaded and searchable."""
    ready = bool(getattr(request.app.state, "ready", False))
    body = Health(status="ok" if ready else "loading", collections=len(registry.names()))
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(registry: RegistryDep, metrics: MetricsDep) -> Response:
    """Prometheus text exposition."""
    collections = registry.all()
    metrics.collections.set(len(collections))
    for collection in collections:
        metrics.index_bytes.labels(collection.name).set(collection.index.memory_bytes)
        metrics.vectors.labels(collection.name).set(collection.index.count)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
