"""Request dependencies as ``Annotated`` aliases: settings, registry, auth, the search pool."""

from __future__ import annotations

from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request

from .auth import KeyRing, Role
from .errors import ServiceError
from .observability import Metrics
from .registry import Registry
from .settings import Settings

__all__ = ["AdminKey", "Limiter", "MetricsDep", "ReadKey", "RegistryDep", "SettingsDep"]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def get_limiter(request: Request) -> CapacityLimiter:
    return request.app.state.limiter  # type: ignore[no-any-return]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def _authorize(request: Request, needed: Role) -> Role | None:
    ring: KeyRing = request.app.state.keys
    if not ring.enabled:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ServiceError(401, "unauthorized", "missing API key: send 'Authorization: Bearer KEY'")
    role = ring.role_of(key.strip())
    if role is None:
        raise ServiceError(401, "unauthorized", "invalid API key")
    if needed == "admin" and role != "admin":
        raise ServiceError(403, "forbidden", "this route needs an admin key")
    return role


def require_read(request: Request) -> Role | None:
    return _authorize(request, "read")


def require_admin(request: Request) -> Role | None:
    return _authorize(request, "admin")


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
Limiter = Annotated[CapacityLimiter, Depends(get_limiter)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReadKey = Annotated[Role | None, Depends(require_read)]
AdminKey = Annotated[Role | None, Depends(require_admin)]
