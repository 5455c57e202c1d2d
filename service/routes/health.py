"""Liveness, readiness and Prometheus metrics.

The probes need no key (orchestrators and load balancers call them), so what they say about a
failed start-up load depends on who asks: the names of the failed collections for anyone, the
reasons (which name the server's directories) only for an admin key, or for anyone when no
keys are configured (then every caller may call the admin routes anyway: the server listens
on loopback only, unless started with --allow-unauthenticated). The log always has every detail.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from glint.client.models import Health
from glint.service.deps import MetricsDep, RegistryDep, authorize
from glint.service.errors import ServiceError
from glint.service.registry import Registry

router = APIRouter(tags=["health"])

FAILED = "failed"
"""What a caller without an admin key reads for the reason of a failed start-up load."""

Status = Literal["ok", "degraded", "loading", "unavailable"]


def _sees_reasons(request: Request) -> bool:
    """Whether the caller may read why a start-up load failed: an admin key (a missing or
    wrong key is no error here: the probes answer everyone)."""
    try:
        authorize(request, "admin")
    except ServiceError:
        return False
    return True


def _health(request: Request, registry: Registry) -> tuple[bool, Health]:
    """Worked out on each call, in this order:

    - ``unavailable`` (not ready) while the server shuts down;
    - ``loading`` (not ready) while start-up loads run;
    - ``unavailable`` (not ready) when a start-up load failed and no collection serves;
    - ``degraded`` (ready) when a start-up load failed but other collections serve: a load
      balancer must not drop a server that answers for every collection but the broken one
      (whose searches answer 503; an admin ``load`` of a good copy makes it ``ok`` again);
    - ``ok`` (ready) otherwise.
    """
    failed = registry.failed()
    serving = len(registry.names())
    status: Status
    if getattr(request.app.state, "stopping", False):
        status = "unavailable"
    elif registry.starting():
        status = "loading"
    elif failed and not serving:
        status = "unavailable"
    else:
        status = "degraded" if failed else "ok"
    if not _sees_reasons(request):
        failed = dict.fromkeys(failed, FAILED)
    body = Health(status=status, collections=serving, loading=registry.busy(), failed=failed)
    return status in ("ok", "degraded"), body


@router.get("/healthz", response_model=Health)
async def healthz(request: Request, registry: RegistryDep) -> Health:
    """The process is up and answering (200 even while indices load)."""
    _, body = _health(request, registry)
    return body.model_copy(update={"status": "ok"})


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, registry: RegistryDep) -> Response:
    """200 when the server can answer: ``ok`` once every configured index is loaded and
    searchable, ``degraded`` when some failed to load at start-up but others serve (``failed``
    names them; the reasons need an admin key). 503 while start-up loads run (``loading``),
    when every start-up load failed (``unavailable``) and during shutdown. A swap does not
    make the server unready: the old index serves until the new one takes over; ``loading``
    names the collections being swapped."""
    ready, body = _health(request, registry)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


# HEAD for the probes too (some load balancers send it); not in the schema, as FastAPI would
# give both methods one operation id
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)


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
