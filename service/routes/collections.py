"""Collection listing and description."""

from __future__ import annotations

from fastapi import APIRouter

from glint.client.models import CollectionInfo, CollectionList, ErrorResponse
from glint.service.deps import ReadKey, RegistryDep

router = APIRouter(prefix="/v1/collections", tags=["collections"])


@router.get("", response_model=CollectionList)
async def list_collections(registry: RegistryDep, role: ReadKey) -> CollectionList:
    """Every loaded collection (server paths in full for admin keys only)."""
    detailed = role in (None, "admin")
    return CollectionList(collections=[c.info(detailed=detailed) for c in registry.all()])


@router.get("/{name}", response_model=CollectionInfo, responses={404: {"model": ErrorResponse}})
async def get_collection(name: str, registry: RegistryDep, role: ReadKey) -> CollectionInfo:
    """Kind, spec, metric, dimension, size, memory and build info of one collection (server
    paths in full for admin keys only)."""
    return registry.get(name).info(detailed=role in (None, "admin"))
