"""Exceptions raised by ``glint.client``.

Every error derives from :class:`GlintClientError`::

    GlintClientError
    ├── TransportError              no HTTP answer: connection refused or reset, read error, ...
    │   └── RequestTimeout          ... because a connect, read, write or pool timeout expired
    ├── ResponseDecodeError         a 2xx answer whose body or headers break the wire contract
    └── APIError                    the server answered with an error status (4xx or 5xx)
        ├── InvalidRequestError     400, 413, 415, 422: the request itself is wrong
        ├── AuthenticationError     401: no API key, or an unknown one
        ├── PermissionDeniedError   403: the key may not do this (e.g. an admin call)
        ├── NotFoundError           404: no such collection (or route)
        ├── ConflictError           409: a load or swap that does not fit (busy, exists, ...)
        └── ServerError             5xx
            └── UnavailableError    503: the service is loading or shutting down

Other error statuses (405, 429, ...) raise a plain :class:`APIError`. Every
:class:`APIError` carries the ``status_code`` and the ``code``, ``message`` and ``field`` of the
server's error envelope (``{"error": {"code", "message", "field"}}``; the codes and their
statuses are listed in :data:`glint.wire.ERROR_CODES`); bodies that are not such an envelope (a
proxy's HTML page, say) still map by status, with ``code`` ``"http_<status>"``.

Arguments the client can see are wrong (a NaN in a vector, ``k=0``, a 3-D query) raise the
builtin :class:`ValueError` before anything is sent; they are not part of this tree.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConflictError",
    "GlintClientError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestTimeout",
    "ResponseDecodeError",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "error_from_response",
]

_MAX_TEXT = 500  # characters of a non-envelope error body kept in the message


class GlintClientError(Exception):
    """Root of every error raised by the glint client."""


class TransportError(GlintClientError):
    """The request got no HTTP answer (connection refused or dropped, read or write failure).

    The underlying :mod:`httpx` exception is chained as ``__cause__``.
    """


class RequestTimeout(TransportError):
    """A connect, read, write or connection-pool timeout expired."""


class ResponseDecodeError(GlintClientError):
    """The server answered with a success status, but its body or headers do not follow the
    wire contract (not JSON, a missing field, a malformed ``.npz`` ...)."""

    def __init__(self, message: str, *, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class APIError(GlintClientError):
    """The server answered with an error status.

    Attributes:
        status_code: the HTTP status.
        code: the stable machine-readable code of the error envelope, e.g.
            ``"dimension_mismatch"``; ``"http_<status>"`` when the body was not an envelope.
        message: the human-readable explanation.
        field: the request field at fault, when the server names one.
        response: the :class:`httpx.Response`, for headers and the raw body.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(status_code, code, message, field)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field
        self.response = response

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.status_code} {self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r}, field={self.field!r})"
        )


class InvalidRequestError(APIError):
    """400, 413, 415 or 422: the server rejected the request (bad JSON, a bad parameter, a
    dimension mismatch, a payload that is too large, an unsupported media type ...)."""


class AuthenticationError(APIError):
    """401: the API key is missing or unknown."""


class PermissionDeniedError(APIError):
    """403: the API key is valid but may not make this call."""


class NotFoundError(APIError):
    """404: the collection (or route) does not exist."""


class ConflictError(APIError):
    """409: the change conflicts with the collection's state (it exists, it is busy being
    loaded or swapped, or the new index does not fit it); nothing was changed."""


class ServerError(APIError):
    """5xx: the server (or a proxy in front of it) failed."""


class UnavailableError(ServerError):
    """503: the service is not ready (indexes still loading) or is shutting down."""


def _class_for_status(status: int) -> type[APIError]:
    if status in (400, 413, 415, 422):
        return InvalidRequestError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 503:
        return UnavailableError
    if status >= 500:
        return ServerError
    return APIError


def _parse_body(response: httpx.Response) -> tuple[str, str, str | None]:
    """The (code, message, field) of an error response, whatever its body looks like."""
    default_code = f"http_{response.status_code}"
    try:
        data: Any = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
            field = error.get("field")
            return (
                code if isinstance(code, str) and code else default_code,
                message if isinstance(message, str) and message else response.reason_phrase,
                field if isinstance(field, str) and field else None,
            )
        detail = data.get("detail")  # a framework's default error body
        if detail is not None:
            message = detail if isinstance(detail, str) else json.dumps(detail)
            return default_code, message[:_MAX_TEXT], None
    text = response.text.strip() if response.content else ""
    return default_code, (text[:_MAX_TEXT] or response.reason_phrase or default_code), None


def error_from_response(response: httpx.Response) -> APIError:
    """The :class:`APIError` subclass for an error ``response`` (which must have been read).

    The class follows the status; ``code``, ``message`` and ``field`` come from the error
    envelope when the body is one, else from the status and the body's text.
    """
    code, message, field = _parse_body(response)
    cls = _class_for_status(response.status_code)
    return cls(response.status_code, code, message, field, response=response)
