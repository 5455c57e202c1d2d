"""Admin routes: load a new collection, swap a collection to a new directory, unload."""

from __future__ import annotations

from pathlib import Path

import anyio
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from glint.client.models import CollectionInfo, ErrorResponse

from ..deps import AdminKey, RegistryDep
from ..errors import ServiceError

router = APIRouter(prefix="/v1/collections", tags=["admin"])
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 422)}


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, description="Index directory on the server's filesystem.")


@router.post("/{name}/load", response_model=CollectionInfo, responses=_ERRORS)
async def load(name: str, body: LoadRequest, registry: RegistryDep, _: AdminKey) -> CollectionInfo:
    """Load the index at ``path`` as a new collection ``name``."""
    if name in registry.names():
        raise ServiceError(409, "conflict", f"collection {name!r} exists; use reload", "name")
    collection = await anyio.to_thread.run_sync(registry.load, name, Path(body.path))
    return collection.info()


@router.post("/{name}/reload", response_model=CollectionInfo, responses=_ERRORS)
async def reload(
    name: str, body: LoadRequest, registry: RegistryDep, _: AdminKey
) -> CollectionInfo:
    """Load ``path`` fully, then swap it in; searches in flight finish on the old index.
    If the new index cannot be loaded the old one keeps serving."""
    old = registry.get(name)
    collection = await anyio.to_thread.run_sync(
        registry.replace, name, Path(body.path), old.index.dim
    )
    return collection.info()


@router.delete("/{name}", status_code=204, responses=_ERRORS)
async def unload(name: str, registry: RegistryDep, _: AdminKey) -> Response:
    """Stop serving collection ``name``."""
    registry.unload(name)
    return Response(status_code=204)
