"""The error codes of the REST API and the HTTP status each goes out with.

Every error answer is the envelope ``{"error": {"code", "message", "field"}}``; ``code`` is one
of :data:`ERROR_CODES`. A code has one status, except where :attr:`ErrorCode.also` lists
another together with the case it is for. A framework's own HTTP error (an unknown route, a
wrong method) gets the code marked ``generic`` for its status, else :data:`FALLBACK_CODE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ERROR_CODES", "FALLBACK_CODE", "ErrorCode", "code_for_status", "status_for"]

FALLBACK_CODE = "error"
"""The code of a framework HTTP error whose status no code is ``generic`` for."""


@dataclass(frozen=True)
class ErrorCode:
    """One error code: its usual HTTP status, and any other status with when it is used."""

    code: str
    status: int
    meaning: str
    also: tuple[tuple[int, str], ...] = ()
    """``(status, when)`` pairs: the other statuses this code goes out with, and the case."""
    generic: bool = False
    """Whether this is the code of a bare HTTP error of ``status`` (a 404 route, a 405 ...)."""

    @property
    def statuses(self) -> frozenset[int]:
        """Every status this code may go out with."""
        return frozenset({self.status, *(status for status, _ in self.also)})


_TABLE = (
    ErrorCode("bad_request", 400, "a request the HTTP layer could not take", generic=True),
    ErrorCode("invalid_json", 400, "the body is not valid JSON"),
    ErrorCode("invalid_body", 400, "a binary body is not the .npy or .npz it should be"),
    ErrorCode(
        "invalid_parameter",
        400,
        "a search parameter is unknown, reserved or has a bad value",
        also=((422, "a candidate count over the server's cap (GLINT_MAX_CANDIDATES)"),),
    ),
    ErrorCode("invalid_input", 400, "the index cannot use the input (NaN, empty, ...)"),
    ErrorCode(
        "invalid_filter",
        400,
        "a filter this collection cannot apply: a field without a payload index, a value of "
        "the wrong type, a malformed clause",
    ),
    ErrorCode(
        "invalid_index",
        400,
        "an index directory is damaged, foreign or of an unknown version",
        also=((422, "an admin load or reload of such a directory"),),
    ),
    ErrorCode(
        "dimension_mismatch",
        400,
        "a query's dimension differs from the collection's",
        also=((409, "an admin reload to an index of another dimension or kind"),),
    ),
    ErrorCode("unauthorized", 401, "no API key, or an unknown one", generic=True),
    ErrorCode("forbidden", 403, "the API key may not make this call", generic=True),
    ErrorCode("not_found", 404, "no such collection, route or index directory", generic=True),
    ErrorCode("method_not_allowed", 405, "the route does not take this method", generic=True),
    ErrorCode("not_acceptable", 406, "no answer in a media type the client accepts", generic=True),
    ErrorCode("conflict", 409, "a load, swap or unload that does not fit the collection's state"),
    ErrorCode("payload_too_large", 413, "the body or the batch is over the limit", generic=True),
    ErrorCode("unsupported_media_type", 415, "a body of an unknown media type", generic=True),
    ErrorCode("invalid_request", 422, "a field breaks the request's schema or a server limit"),
    ErrorCode("internal", 500, "an unexpected failure of the server"),
    ErrorCode(
        "timeout", 503, "reading, parsing and searching did not finish within the request timeout"
    ),
    ErrorCode(
        "unavailable",
        503,
        "still loading, failed to load, shutting down, or over the memory budget for bodies",
        generic=True,
    ),
)

ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType({entry.code: entry for entry in _TABLE})
"""Every error code, by name."""

_GENERIC: Mapping[int, str] = MappingProxyType(
    {entry.status: entry.code for entry in _TABLE if entry.generic}
)


def status_for(code: str, status: int | None = None) -> int:
    """The HTTP status of ``code``: its usual one, or ``status`` if the table allows it.

    Raises:
        KeyError: ``code`` is not in the table.
        ValueError: ``code`` never goes out with ``status``.
    """
    entry = ERROR_CODES[code]
    if status is None:
        return entry.status
    if status not in entry.statuses:
        allowed = ", ".join(str(s) for s in sorted(entry.statuses))
        raise ValueError(f"error code {code!r} goes out with {allowed}, not {status}")
    return status


def code_for_status(status: int) -> str:
    """The code of a bare HTTP error of ``status`` (one raised by the web framework)."""
    return _GENERIC.get(status, FALLBACK_CODE)
