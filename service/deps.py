"""Request dependencies as ``Annotated`` aliases: settings, registry, auth, the search pool."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
from anyio import CapacityLimiter
from fastapi import Depends, Request

from glint.index import Index, SearchResult
from glint.index.threads import CoreBudget

from .auth import KeyRing, Role
from .errors import ServiceError
from .observability import Metrics
from .registry import Registry
from .settings import Settings

__all__ = ["AdminKey", "MetricsDep", "Pool", "ReadKey", "RegistryDep", "SearchPool", "SettingsDep"]

T = TypeVar("T")


@dataclass(frozen=True)
class SearchPool:
    """Where blocking work runs: worker threads off the event loop, at most ``limiter``'s
    capacity of them at once, and searches sharing ``cores`` so that concurrent requests never
    run more search threads than the budget holds (see :mod:`glint.index.threads`)."""

    limiter: CapacityLimiter
    cores: CoreBudget

    async def search(
        self, index: Index, queries: Any, k: int, params: dict[str, Any], threads: int
    ) -> SearchResult:
        """``index.search`` with up to ``threads`` cores, whatever of them are free."""

        def work() -> SearchResult:
            with self.cores.take(threads) as got:
                return index.search(queries, k, threads=got, **params)

        return await anyio.to_thread.run_sync(work, limiter=self.limiter)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def get_pool(request: Request) -> SearchPool:
    return request.app.state.pool  # type: ignore[no-any-return]


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
Pool = Annotated[SearchPool, Depends(get_pool)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReadKey = Annotated[Role | None, Depends(require_read)]
AdminKey = Annotated[Role | None, Depends(require_admin)]
