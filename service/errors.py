"""The JSON error envelope and the one mapping from exceptions to HTTP statuses.

Each code's status comes from :data:`glint.wire.ERROR_CODES`; a status is given explicitly
only for the codes the table lists with a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from glint.client.models import ErrorBody, ErrorResponse
from glint.index.errors import (
    ConfigError,
    DimensionError,
    FormatError,
    InputError,
    NotFoundError,
    OverLimitError,
)
from glint.index.filters import FilterError
from glint.wire import code_for_status, status_for
from glint.wire.filters import error_place

__all__ = ["ServiceError", "error_response", "filter_error", "install_error_handlers"]

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client went away before it was read."""
_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "1"}}


class ServiceError(Exception):
    """An error the service answers with a code, a message and the field at fault; the
    status is the code's in the wire table, or ``status`` where the table lists a second."""

    def __init__(
        self, code: str, message: str, field: str | None = None, *, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = (
            status_for(code, status),
            code,
            message,
            field,
        )


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _answer(error: ServiceError) -> JSONResponse:
    headers = _HEADERS.get(error.status)
    return error_response(error.status, error.code, error.message, error.field, headers)


def _validation_error(exc: RequestValidationError) -> ServiceError:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return ServiceError("invalid_json", f"request body is not valid JSON: {first.get('msg')}")
    if loc and loc[0] == "filter":
        return filter_error({**first, "loc": loc}, root="")
    where = f"field '{field}'" if field else "request body"
    return ServiceError("invalid_request", f"{where}: {first.get('msg')}", field)


def filter_error(error: Mapping[str, Any], root: str = "filter") -> ServiceError:
    """The answer to a malformed filter (``error``, pydantic's first about it; its location
    under ``root``): 400 ``invalid_filter``, naming the place as the engine does the errors of
    a filter it cannot apply (``filter.must.0.match: ...``)."""
    field = error_place(error, root)
    message = str(error.get("msg")).removeprefix("Value error, ")
    return ServiceError("invalid_filter", f"{field}: {message}", field)


# The index's errors, most specific first: (exception, code, field at fault; a FilterError
# names its own).
_INDEX_ERRORS: tuple[tuple[type[Exception], str, str | None], ...] = (
    (DimensionError, "dimension_mismatch", "vector"),
    (ConfigError, "invalid_parameter", "params"),
    (FilterError, "invalid_filter", "filter"),
    (InputError, "invalid_input", None),
    (NotFoundError, "not_found", None),
    (FormatError, "invalid_index", None),
)


def _index_error(exc: Exception) -> ServiceError:
    """The answer to an error of the index layer (one of the classes above)."""
    if isinstance(exc, OverLimitError):  # a candidate count over the server's cap
        return ServiceError("invalid_parameter", str(exc), f"params.{exc.param}", status=422)
    code, field = next((c, f) for kind, c, f in _INDEX_ERRORS if isinstance(exc, kind))
    if isinstance(exc, FilterError):
        field = exc.field
    return ServiceError(code, str(exc), field)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the error envelope; bad input never becomes a 500."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        return _answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _answer(_validation_error(exc))

    async def _index(_: Request, exc: Exception) -> JSONResponse:
        return _answer(_index_error(exc))

    index_errors: list[type[Exception]] = [OverLimitError, *(k for k, _, _ in _INDEX_ERRORS)]
    for kind in index_errors:
        app.add_exception_handler(kind, _index)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = code_for_status(exc.status_code)
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # The client hung up before its body was in: no error of the server's. 499 (nginx's
        # "client closed request") is what the metrics and access log record; no one reads it.
        log.info(
            "body not read to its end (client gone, or cut off at a limit): %s %s",
            request.method,
            request.url.path,
        )
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(ServiceError("internal", "internal server error"))
