"""The synchronous client."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ._base import (
    DEFAULT_BASE_URL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    BaseClient,
    BatchResult,
    RetryConfig,
    TimeoutTypes,
    VerifyTypes,
)
from ._retry import Call, retry_after_error, retry_after_response, transport_error
from .models import CollectionInfo, Filter, Health, Hit, SearchResponse

__all__ = ["Client"]

T = TypeVar("T")


class Client(BaseClient):
    """A synchronous client of a glint server.

    Use it as a context manager, or call :meth:`close` when done. It is safe to share one client
    between threads (it holds a pool of keep-alive connections)::

        with Client("http://127.0.0.1:8000", api_key="...") as client:
            hits = client.search("docs", vector, k=10)

    Args:
        base_url: the server's URL, optionally with a path prefix.
        api_key: sent as ``Authorization: Bearer <api_key>`` when given.
        timeout: seconds (connect capped at 2 s) or an :class:`httpx.Timeout`;
            default 10 s, connect 2 s.
        retries: a :class:`RetryConfig`, or just the maximum number of retries.
        transport: a custom :mod:`httpx` transport (e.g. :class:`httpx.MockTransport`);
            it brings its own TLS settings, so ``verify`` does not apply to it.
        headers: extra headers sent with every request.
        verify: how an ``https`` server's certificate is checked: ``True`` (the default)
            against the default trust store (certifi's bundle, or ``SSL_CERT_FILE`` /
            ``SSL_CERT_DIR``); a path to a PEM CA bundle (or a directory of CA certificates)
            to trust instead, e.g. a private CA's; an :class:`ssl.SSLContext`, used as is
            (client certificates go on it); ``False`` not at all (test setups only). A
            certificate that fails the check raises :class:`TransportError`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        retries: RetryConfig | int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        verify: VerifyTypes = True,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            headers=headers,
            verify=verify,
        )
        self._http = httpx.Client(transport=transport, timeout=self._timeout, verify=self._verify)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._http.close()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------------

    def _send(self, call: Call[Any]) -> httpx.Response:
        retry = 0
        while True:
            try:
                response = self._http.send(call.request)
            except httpx.RequestError as exc:
                delay = retry_after_error(self._retry, call, retry, exc)
                if delay is None:
                    raise transport_error(call.request, exc) from exc
            else:
                delay = retry_after_response(self._retry, call, retry, response)
                if delay is None:
                    return response
                response.close()
            time.sleep(delay)
            retry += 1

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._send(call))

    # -- API ---------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /healthz``: whether the process is up."""
        return self._run(self._health_call())

    def ready(self) -> bool:
        """``GET /readyz``: True when the start-up loads are done and collections serve (200, also
        when ``degraded``: some failed, others serve), False while not (503)."""
        return self._run(self._ready_call())

    def collections(self) -> list[CollectionInfo]:
        """Every loaded collection."""
        return self._run(self._collections_call())

    def info(self, name: str) -> CollectionInfo:
        """One collection's description (raises :class:`NotFoundError` if there is none)."""
        return self._run(self._info_call(name))

    def search(
        self,
        name: str,
        query: Any,
        k: int = 10,
        *,
        params: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest hits to ``query``, best first.

        ``query`` is a 1-D vector (sent as ``vector``) or a 2-D token matrix (sent as
        ``vectors``, for multi-vector collections). ``params`` are the index kind's search
        parameters; ``include=["payload"]`` returns each hit's payload. ``filter`` (a
        :class:`~glint.client.models.Filter`, or its JSON as a mapping, checked before it is
        sent) keeps only the points whose payload passes it: ``{"must": [{"key": "lang",
        "match": {"value": "en"}}]}``; its fields need a payload index in the collection.
        """
        response = self.search_response(
            name, query, k, params=params, include=include, filter=filter
        )
        return response.hits

    def search_response(
        self,
        name: str,
        query: Any,
        k: int = 10,
        *,
        params: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
    ) -> SearchResponse:
        """Like :meth:`search`, with the metric and the server-side time as well."""
        return self._run(self._search_call(name, query, k, params, include, filter))

    def search_batch(
        self,
        name: str,
        queries: Any,
        k: int = 10,
        *,
        params: Mapping[str, Any] | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
        binary: bool = True,
        timeout: TimeoutTypes | None = None,
    ) -> BatchResult:
        """The ``k`` nearest hits of each row of the ``[nq, dim]`` matrix ``queries``, or, for
        a multi-vector collection, of each token set (a list of ``[t, dim]`` matrices, or
        ``tokens`` with ``offsets`` as a mapping or an object such as ``glint.index.TokenSets``;
        sent as ``.npz`` when ``binary``, else as JSON ``token_sets``).

        With ``binary`` (the default) the matrix goes as ``.npy`` and the answer comes as
        ``.npz``; otherwise both are JSON. Either way the result holds int64 ids and float32
        scores of shape ``[nq, k]``, padded with id -1 (see :class:`BatchResult`).
        ``filter`` (as in :meth:`search`) applies to every query; ``timeout`` overrides the
        client's for this call.
        """
        call = self._search_batch_call(name, queries, k, params, binary, timeout, filter)
        return self._run(call)

    def load(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        timeout: TimeoutTypes | None = None,
    ) -> CollectionInfo:
        """Admin: load the index directory ``path`` (on the server) as collection ``name``.

        Not retried after the request may have reached the server.
        """
        return self._run(self._load_call(name, path, reload=False, timeout=timeout))

    def reload(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        timeout: TimeoutTypes | None = None,
    ) -> CollectionInfo:
        """Admin: replace collection ``name`` with the index directory ``path``."""
        return self._run(self._load_call(name, path, reload=True, timeout=timeout))

    def unload(self, name: str) -> None:
        """Admin: drop collection ``name``."""
        self._run(self._unload_call(name))
