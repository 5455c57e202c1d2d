"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from glint.index.storage import glint_version
from glint.index.threads import CoreBudget, limit_blas_threads

from .auth import KeyRing
from .deps import SearchPool
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware
from .observability import Metrics, install_metrics_middleware
from .registry import Registry, parse_index_arg
from .routes import admin, collections, health, search
from .settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the indices in ``settings.index_dirs`` are loaded at start-up."""
    settings = settings or Settings()
    limit_blas_threads(1)  # searches run on glint's own threads; BLAS must not add more
    keys = KeyRing.from_sources(settings.api_keys_file, settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = SearchPool(
            anyio.CapacityLimiter(settings.search_workers), CoreBudget(settings.search_workers)
        )
        registry: Registry = app.state.registry
        for arg in settings.index_dirs:
            name, path = parse_index_arg(arg)
            await anyio.to_thread.run_sync(registry.load, name, path)
        app.state.ready = True
        log.info("ready: %d collection(s): %s", len(registry.names()), ", ".join(registry.names()))
        try:
            yield
        finally:
            app.state.ready = False
            registry.close()

    app = FastAPI(
        title="glint",
        version=glint_version(),
        summary="Compressed-index vector similarity search",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.registry = Registry(verify=settings.verify_checksums)
    app.state.metrics = Metrics()
    app.state.ready = False
    install_error_handlers(app)
    install_metrics_middleware(app, app.state.metrics)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    for module in (health, collections, search, admin):
        app.include_router(module.router)
    return app
