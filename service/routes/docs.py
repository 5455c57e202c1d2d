"""The API docs, ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, as ``GLINT_DOCS``
says: behind the read key (``read``, the default: open when no keys are configured, as every
route is), open to anyone (``open``), or not served at all (``off``: 404).

The schema lists every route and field, so it is not handed to anyone who could not call the
routes anyway. FastAPI's own docs routes cannot take a dependency, so the app is built without
them (``docs_url``, ``redoc_url`` and ``openapi_url`` None) and :func:`install_docs` adds these.
In ``read`` mode a browser must send the key too (a proxy that adds the header, say): a
browser on its own gets the 401 envelope; ``open`` serves the pages to anyone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import JSONResponse

from glint.service.deps import authorize
from glint.service.settings import Settings

__all__ = ["OPENAPI_URL", "install_docs"]

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def install_docs(app: FastAPI, settings: Settings) -> None:
    """Add the docs routes to ``app`` under the rule of ``settings.docs``."""
    mode = settings.docs
    if mode == "off":
        return
    keyed = mode == "read"

    async def openapi(request: Request) -> Response:
        if keyed:
            authorize(request, "read")
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        if root_path and app.root_path_in_servers and not app.servers:
            app.servers = [{"url": root_path}]  # as FastAPI's own route does behind a proxy
            app.openapi_schema = None
        return JSONResponse(app.openapi())

    async def swagger(request: Request) -> Response:
        if keyed:
            authorize(request, "read")
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root_path + OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root_path + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def oauth2_redirect(request: Request) -> Response:
        if keyed:
            authorize(request, "read")
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> Response:
        if keyed:
            authorize(request, "read")
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        return get_redoc_html(openapi_url=root_path + OPENAPI_URL, title=f"{app.title} - ReDoc")

    routes: tuple[tuple[str, Callable[[Request], Awaitable[Response]]], ...] = (
        (OPENAPI_URL, openapi),
        (DOCS_URL, swagger),
        (OAUTH2_REDIRECT_URL, oauth2_redirect),
        (REDOC_URL, redoc),
    )
    for path, endpoint in routes:
        app.add_api_route(path, endpoint, methods=["GET", "HEAD"], include_in_schema=False)
