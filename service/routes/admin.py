"""Admin routes: load a new collection, swap a collection to a new directory, unload.

A ``path`` that cannot be loaded is answered 422 ``invalid_index``, naming the path as it was
sent (never as an absolute path, which would show the server's working directory). Whether it
does not exist, is no directory, cannot be read or holds something else is not told apart:
the answer is the same, so that these routes tell nothing about files that are not glint
indices. Only for a directory holding a glint manifest does it say what is wrong (a
checksum, a truncated file, a version); the server log has every detail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from glint.client.models import CollectionInfo, ErrorResponse
from glint.service.deps import AdminKey, Service, ServiceDep
from glint.service.errors import ServiceError
from glint.service.registry import Registry, parse_index_arg

router = APIRouter(prefix="/v1/collections", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 422)
}
T = TypeVar("T")


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        min_length=1, max_length=4096, description="Index directory on the server's filesystem."
    )


async def _admin(service: Service, action: str, change: Callable[[Registry], T]) -> T:
    """Run a registry change off the event loop and count its outcome.

    Admin changes reach only the worker that answers; with several workers they would leave
    the workers serving different indices, so they are refused."""
    if service.settings.workers > 1:
        raise ServiceError(
            "conflict",
            f"admin routes need a single worker (this server runs {service.settings.workers}); "
            "change the served directories and restart instead",
        )
    try:
        result = await anyio.to_thread.run_sync(change, service.registry)
    except ServiceError as exc:
        service.metrics.admin.labels(action, exc.code).inc()
        raise
    service.metrics.admin.labels(action, "ok").inc()
    return result


@router.post("/{name}/load", response_model=CollectionInfo, responses=_ERRORS)
async def load(name: str, body: LoadRequest, service: ServiceDep, _: AdminKey) -> CollectionInfo:
    """Load the index at ``path`` as a new collection ``name`` (checksums verified, a test
    search, warmed) before it answers queries."""
    try:
        parse_index_arg(f"{name}=.")  # the same name rules as `glint serve NAME=DIR`
    except ValueError as exc:
        raise ServiceError("invalid_request", str(exc), "name") from None
    path = Path(body.path)
    collection = await _admin(service, "load", lambda r: r.load(name, path, new=True))
    return collection.info()


@router.post("/{name}/reload", response_model=CollectionInfo, responses=_ERRORS)
async def reload(name: str, body: LoadRequest, service: ServiceDep, _: AdminKey) -> CollectionInfo:
    """Swap collection ``name`` to the index at ``path``: load it, verify it (checksums,
    same dimension, a test search), warm it, then switch in one step. Searches in flight
    finish on the old index and none fails. If the new index cannot be used, the old one
    keeps serving and the error says why."""
    path = Path(body.path)
    collection = await _admin(service, "reload", lambda r: r.replace(name, path))
    return collection.info()


@router.delete("/{name}", status_code=204, responses=_ERRORS)
async def unload(name: str, service: ServiceDep, _: AdminKey) -> Response:
    """Stop serving collection ``name``; searches in flight on it finish first."""
    await _admin(service, "unload", lambda r: r.unload(name))
    return Response(status_code=204)
