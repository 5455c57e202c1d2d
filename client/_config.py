"""Client configuration: the defaults, and the checks on the base URL and the timeout."""

from __future__ import annotations

import httpx

from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "TimeoutTypes",
    "normalize_base_url",
    "to_timeout",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=DEFAULT_CONNECT_TIMEOUT)
USER_AGENT = f"glint-client/{__version__}"

TimeoutTypes = float | httpx.Timeout
"""Seconds (``connect`` is capped at 2 s) or a full :class:`httpx.Timeout`."""


def to_timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    """``timeout`` as an :class:`httpx.Timeout`; a ValueError unless it is one, or seconds > 0."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be seconds or an httpx.Timeout, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    return httpx.Timeout(float(timeout), connect=min(float(timeout), DEFAULT_CONNECT_TIMEOUT))


def normalize_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; a ValueError unless it is an http(s) URL with a
    host and neither a query nor a fragment."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"invalid base_url {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if url.query or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    return str(url.copy_with(path=url.path.rstrip("/") or "/")).rstrip("/")
