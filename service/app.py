"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from glint.index.storage import glint_version
from glint.index.threads import limit_blas_threads

from .auth import KeyRing
from .cores import CoreBudget
from .deps import SearchPool, Service
from .errors import install_error_handlers
from .limits import AdmissionMiddleware, BodyLimitMiddleware
from .observability import Metrics, ObservabilityMiddleware
from .registry import Registry, parse_index_arg
from .routes import admin, collections, health, search
from .routes.docs import install_docs
from .settings import Settings

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the indices in ``settings.index_dirs`` are loaded at start-up."""
    settings = settings or Settings()
    limit_blas_threads(1)  # searches run on glint's own threads; BLAS must not add more
    keys = KeyRing.from_sources(settings.api_keys_file, settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics: Metrics = app.state.metrics
        app.state.pool = SearchPool(
            anyio.CapacityLimiter(settings.search_workers),
            CoreBudget(settings.search_workers),
            timeout=settings.request_timeout_s,
            max_candidates=settings.max_candidates,
            on_timeout=metrics.timeouts.inc,
        )
        registry: Registry = app.state.registry
        app.state.service = Service(settings, registry, app.state.pool, metrics)
        targets = [parse_index_arg(arg) for arg in settings.index_dirs]
        registry.expect([name for name, _ in targets])

        def load_all() -> None:
            # The server answers /healthz at once; /readyz says 503 until the start-up loads
            # are over (see routes/health.py: readiness is worked out on each call).
            loaded = [registry.load_at_start(name, path) for name, path in targets]
            names = ", ".join(registry.names()) or "none"
            if all(loaded):
                log.info("ready: %d collection(s): %s", len(registry.names()), names)
            else:
                # the others serve: /readyz says "degraded" (or 503 if none loaded)
                log.error(
                    "%d index(es) failed to load; serving %d collection(s): %s",
                    loaded.count(False),
                    len(registry.names()),
                    names,
                )

        loader = threading.Thread(target=load_all, name="glint-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            app.state.stopping = True
            await anyio.to_thread.run_sync(loader.join)  # a load under way ends first
            registry.close()

    app = FastAPI(
        title="glint",
        version=glint_version(),
        summary="Compressed-index vector similarity search",
        lifespan=lifespan,
        # the docs routes are glint's own (routes/docs.py): behind the read key by default
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.registry = Registry(verify=settings.verify_checksums)
    app.state.metrics = Metrics()
    app.state.stopping = False
    install_error_handlers(app)
    # inside the body limit (a body over it is answered 413, not 503), outside the routes
    app.add_middleware(
        AdmissionMiddleware,
        capacity=settings.max_inflight_bytes,
        metrics=app.state.metrics,
        keys=keys,
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    # added last, so outermost: it times and logs every answer, the body limit's 413s included
    app.add_middleware(
        ObservabilityMiddleware, metrics=app.state.metrics, collections=app.state.registry.names
    )
    for module in (health, collections, search, admin):
        app.include_router(module.router)
    _add_schema_components(app, search.SCHEMA_COMPONENTS)
    install_docs(app, settings)
    # the hot single-query route, matched before FastAPI's own (which documents it)
    app.router.routes.insert(0, search.fast_search_route())
    return app


def _add_schema_components(app: FastAPI, schemas: Mapping[str, Any]) -> None:
    """Add ``schemas`` to the components of the app's OpenAPI schema: the models that the
    request bodies described inline (the search routes') refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()  # FastAPI's: made once, then kept in app.openapi_schema
        if fresh:
            schema.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def create_app_from_env() -> FastAPI:
    """The app with settings from ``GLINT_*`` variables (uvicorn's factory for workers)."""
    return create_app(Settings())
