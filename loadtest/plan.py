"""The requests of a load test, built once by the client's I/O-free core and then cycled.

:class:`RequestBuilder` is a :class:`glint.client._base.BaseClient` asked for the
:class:`httpx.Request` of a call rather than for its result: bodies, headers, query strings and
URLs are the client's, written once; the load generator sends them with its own pool and
neither parses nor retries the answers. The search requests are built before the clock starts
(:func:`search_requests`), so the generator spends its CPU on sending, not on encoding.
"""

from __future__ import annotations

import math

import httpx
import numpy as np

from glint.client._base import BaseClient

from .config import LoadConfig
from .errors import LoadTestError, UsageError
from .queries import Queries, unit_rows

__all__ = ["BODY_BUDGET", "MAX_BODIES", "RANDOM_TOKENS", "RequestBuilder", "search_requests"]

MAX_BODIES = 256  # distinct pre-built search requests, cycled through
BODY_BUDGET = 64 * 1024 * 1024  # ...unless their bodies would take more memory than this
RANDOM_TOKENS = (4, 32)  # tokens per random multi-vector query, inclusive


class RequestBuilder(BaseClient):
    """The requests of one load test's calls, with ``api_key`` as their bearer key and
    ``timeout`` seconds (connect included) as their timeout."""

    def __init__(self, config: LoadConfig, *, api_key: str | None, timeout: float) -> None:
        try:
            super().__init__(config.url, api_key=api_key or None, timeout=httpx.Timeout(timeout))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self._config = config

    def collection(self) -> httpx.Request:
        """``GET /v1/collections/{name}``."""
        try:
            return self._info_call(self._config.collection).request
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def reload(self, path: str) -> httpx.Request:
        """``POST /v1/collections/{name}/reload {"path": path}``."""
        name = self._config.collection
        return self._load_call(name, path, reload=True, timeout=None).request

    def search(self, chunk: Queries) -> httpx.Request:
        """The search of ``chunk``: its first query alone in single mode, else all of it."""
        config = self._config
        name, k, params, flt = config.collection, config.k, config.params, config.filter
        try:
            if config.mode == "single":
                return self._search_call(name, chunk[0], k, params, None, flt).request
            binary = config.transport == "binary"
            return self._search_batch_call(name, chunk, k, params, binary, None, flt).request
        except ValueError as exc:
            raise LoadTestError(f"cannot build a search request: {exc}") from None


def search_requests(
    builder: RequestBuilder,
    config: LoadConfig,
    dim: int,
    multivector: bool,
    queries: Queries | None,
) -> list[httpx.Request]:
    """The search requests to cycle through: ``queries`` in turn (random unit vectors when
    there are none), at most :data:`MAX_BODIES` of them and about :data:`BODY_BUDGET` bytes."""
    per = config.queries_per_request
    needed = config.warmup + config.count if config.count is not None else MAX_BODIES
    limit = max(1, min(needed, MAX_BODIES))
    if queries is not None:
        n = len(queries)
        limit = min(limit, n // math.gcd(n, per))  # after that the requests repeat
    rng = np.random.default_rng(config.seed)
    requests: list[httpx.Request] = []
    size = 0
    for i in range(limit):
        chunk: Queries
        if queries is None and multivector:
            lengths = rng.integers(RANDOM_TOKENS[0], RANDOM_TOKENS[1] + 1, per)
            chunk = [unit_rows(rng, int(t), dim) for t in lengths]
        elif queries is None:
            chunk = unit_rows(rng, per, dim)
        else:
            rows = (i * per + np.arange(per)) % len(queries)
            chunk = [queries[r] for r in rows] if isinstance(queries, list) else queries[rows]
        requests.append(builder.search(chunk))
        size += len(requests[-1].content)
        if size >= BODY_BUDGET:
            break
    return requests
