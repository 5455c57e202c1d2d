"""The retry policy: which failed calls are tried again, and after how long.

The senders (:class:`Client`, :class:`AsyncClient`) ask :func:`retry_after_response` or
:func:`retry_after_error` after each attempt and sleep for the answer, or stop on ``None``.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from .errors import RequestTimeout, TransportError

__all__ = [
    "DEFAULT_RETRIES",
    "Call",
    "RetryConfig",
    "retry_after_error",
    "retry_after_response",
    "to_retry",
    "transport_error",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors raised before the request reached the server: always safe to retry.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors after (part of) the request may have been sent: retried for idempotent calls only.
_MAYBE_SENT_ERRORS = (httpx.ReadTimeout, httpx.WriteTimeout)


@dataclass(frozen=True)
class RetryConfig:
    """When and how often a failed call is tried again.

    A call is retried at most ``max_retries`` times (so tried ``max_retries + 1`` times):

    - on a connect error, connect timeout or pool timeout, whatever the call (nothing was sent);
    - for idempotent calls only (GETs and searches; never ``load``/``reload``/``unload``): on a
      read or write timeout, and on an HTTP status in ``retry_statuses``.

    Before retry ``n`` (0-based) the client sleeps ``min(backoff_max, backoff_base * 2**n)``
    seconds, scaled by a random factor in [0.5, 1) when ``jitter`` is on; a numeric
    ``Retry-After`` header on the answer replaces that delay (still capped at ``backoff_max``).
    """

    max_retries: int = 2
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    jitter: bool = True
    retry_statuses: frozenset[int] = frozenset({502, 503, 504})

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be an int, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("backoff_base", "backoff_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        delay = min(self.backoff_max, self.backoff_base * 2.0 ** min(retry, 64))
        if self.jitter:
            delay *= 0.5 + random.random() / 2
        return delay


DEFAULT_RETRIES = RetryConfig()


def to_retry(retries: RetryConfig | int) -> RetryConfig:
    """``retries`` as a :class:`RetryConfig` (an int is the maximum number of retries)."""
    if isinstance(retries, RetryConfig):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ValueError(f"retries must be a RetryConfig or an int, got {retries!r}")
    return RetryConfig(max_retries=retries)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request, how to turn the answer into a result, and whether the call
    is idempotent (and so may be retried after it might have reached the server)."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]
    idempotent: bool
    ok_statuses: frozenset[int] = frozenset()
    """Non-2xx statuses that are an answer, not a failure (``ready`` treats 503 so)."""


def retry_after_response(
    policy: RetryConfig, call: Call[Any], retry: int, response: httpx.Response
) -> float | None:
    """Seconds to wait before trying ``call`` again after ``response``, or None to stop."""
    status = response.status_code
    if (
        retry >= policy.max_retries
        or not call.idempotent
        or status in call.ok_statuses
        or status not in policy.retry_statuses
    ):
        return None
    delay = policy.backoff(retry)
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = math.nan  # an HTTP date: keep our own backoff
        if math.isfinite(seconds) and seconds >= 0:
            delay = min(seconds, policy.backoff_max)
    _log_retry(policy, call, retry, delay, f"HTTP {status}")
    return delay


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the server's certificate failed verification somewhere in ``exc``'s chain: that
    answer will not change on a retry."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl; bounded against a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_after_error(
    policy: RetryConfig, call: Call[Any], retry: int, exc: httpx.RequestError
) -> float | None:
    """Seconds to wait before trying ``call`` again after ``exc``, or None to stop."""
    if retry >= policy.max_retries or _certificate_refused(exc):
        return None
    if not isinstance(exc, _NOT_SENT_ERRORS) and not (
        call.idempotent and isinstance(exc, _MAYBE_SENT_ERRORS)
    ):
        return None
    delay = policy.backoff(retry)
    _log_retry(policy, call, retry, delay, type(exc).__name__)
    return delay


def _log_retry(policy: RetryConfig, call: Call[Any], retry: int, delay: float, reason: str) -> None:
    logger.info(
        "glint %s %s failed (%s); retry %d/%d in %.3f s",
        call.request.method,
        call.request.url.path,
        reason,
        retry + 1,
        policy.max_retries,
        delay,
    )


def transport_error(request: httpx.Request, exc: httpx.RequestError) -> TransportError:
    """The error raised when ``request`` got no answer and is not tried again."""
    detail = str(exc) or type(exc).__name__
    message = f"{request.method} {request.url}: {detail}"
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(message)
    return TransportError(message)
