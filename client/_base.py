"""The I/O-free core shared by :class:`Client` and :class:`AsyncClient`.

Everything that does not need a socket is written once, behind :class:`BaseClient`: argument
checks (:mod:`._validate`), one :class:`~._retry.Call` per API method (the
:class:`httpx.Request` to send, how to parse the answer, whether it may be retried), response
parsing (:mod:`._parse`) and the retry policy (:mod:`._retry`). The two clients only add the
sending and the sleeping; the load generator sends the same requests with its own pool.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import numpy as np

from glint.wire import JSON_MEDIA_TYPE, NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE, encode_npy, encode_npz

from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    TimeoutTypes,
    VerifyTypes,
    normalize_base_url,
    to_timeout,
    to_verify,
)
from ._parse import (
    BatchResult,
    batch_parser,
    parse_collections,
    parse_empty,
    parse_ready,
    parser,
)
from ._retry import DEFAULT_RETRIES, Call, RetryConfig, to_retry
from ._validate import (
    batch_matrix,
    batch_token_sets,
    check_filter,
    check_include,
    check_k,
    check_name,
    check_params,
    check_path,
    encode_json,
    is_token_sets,
    query_body,
)
from .models import CollectionInfo, Filter, Health, SearchResponse

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "BaseClient",
    "BatchResult",
    "RetryConfig",
    "TimeoutTypes",
    "VerifyTypes",
]


class _BatchSearch(NamedTuple):
    """What a batch asks of each of its queries, checked: ``k``, ``params`` and the filter's
    JSON object (None for no filter)."""

    k: int
    params: dict[str, Any]
    filter: dict[str, Any] | None

    def json_fields(self, queries: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of a batch of ``queries`` (its one member, ``vectors`` or
        ``token_sets``)."""
        fields = {**queries, "k": self.k, "params": self.params}
        if self.filter is not None:
            fields["filter"] = self.filter
        return fields


class BaseClient:
    """Configuration, request construction, response parsing and retry policy; no I/O."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        retries: RetryConfig | int = DEFAULT_RETRIES,
        headers: Mapping[str, str] | None = None,
        verify: VerifyTypes = True,
    ) -> None:
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError("api_key must be a non-empty string or None")
        self._base_url = normalize_base_url(base_url)
        self._verify = to_verify(verify)
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = to_timeout(timeout)
        self._retry = to_retry(retries)
        merged = httpx.Headers({"User-Agent": USER_AGENT, "Accept": JSON_MEDIA_TYPE})
        if headers:
            merged.update(headers)
        if api_key is not None:
            merged["Authorization"] = f"Bearer {api_key}"
        self._headers = merged

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base_url

    @property
    def timeout(self) -> httpx.Timeout:
        """The default timeout of every call."""
        return self._timeout

    @property
    def retries(self) -> RetryConfig:
        """The retry policy."""
        return self._retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    # -- request construction ----------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        accept: str = JSON_MEDIA_TYPE,
        query: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | None = None,
    ) -> httpx.Request:
        headers = httpx.Headers(self._headers)
        headers["Accept"] = accept
        if json_body is not None:
            content = encode_json(json_body)
            content_type = JSON_MEDIA_TYPE
        if content_type is not None:
            headers["Content-Type"] = content_type
        effective = self._timeout if timeout is None else to_timeout(timeout)
        url = self._urls.get(path)
        if url is None:  # parsing a URL costs more than a search's JSON; parse each path once
            if len(self._urls) >= 256:
                self._urls.clear()
            url = self._urls[path] = httpx.URL(self._base_url + path)
        return httpx.Request(
            method,
            url,
            params=dict(query) if query else None,
            headers=headers,
            content=content,
            extensions={"timeout": effective.as_dict()},
        )

    @staticmethod
    def _collection_path(name: str, suffix: str = "") -> str:
        return f"/v1/collections/{quote(check_name(name), safe='')}{suffix}"

    def _health_call(self) -> Call[Health]:
        return Call(self._request("GET", "/healthz"), parser(Health), idempotent=True)

    def _ready_call(self) -> Call[bool]:
        return Call(
            self._request("GET", "/readyz"),
            parse_ready,
            idempotent=True,
            ok_statuses=frozenset({503}),
        )

    def _collections_call(self) -> Call[list[CollectionInfo]]:
        return Call(self._request("GET", "/v1/collections"), parse_collections, idempotent=True)

    def _info_call(self, name: str) -> Call[CollectionInfo]:
        request = self._request("GET", self._collection_path(name))
        return Call(request, parser(CollectionInfo), idempotent=True)

    def _search_call(
        self,
        name: str,
        query: object,
        k: int,
        params: Mapping[str, Any] | None,
        include: Sequence[str] | str | None,
        filter: Filter | Mapping[str, Any] | None = None,
    ) -> Call[SearchResponse]:
        path = self._collection_path(name, "/search")
        body = query_body(query)
        body["k"] = check_k(k)
        body["params"] = check_params(params)
        body["include"] = check_include(include)
        checked_filter = check_filter(filter)
        if checked_filter is not None:  # no filter, no key: what older servers take
            body["filter"] = checked_filter
        request = self._request("POST", path, json_body=body)
        return Call(request, parser(SearchResponse), idempotent=True)

    def _search_batch_call(
        self,
        name: str,
        queries: object,
        k: int,
        params: Mapping[str, Any] | None,
        binary: bool,
        timeout: TimeoutTypes | None,
        filter: Filter | Mapping[str, Any] | None = None,
    ) -> Call[BatchResult]:
        path = self._collection_path(name, "/search/batch")
        k = check_k(k)
        search = _BatchSearch(k, check_params(params), check_filter(filter))
        if is_token_sets(queries):
            return self._token_batch_call(path, queries, search, binary, timeout)
        matrix = batch_matrix(queries)
        if binary:
            body = encode_npy(matrix)
            request = self._binary_batch_request(path, body, NPY_MEDIA_TYPE, search, timeout)
        else:
            fields = search.json_fields({"vectors": matrix})
            request = self._request("POST", path, json_body=fields, timeout=timeout)
        return Call(request, batch_parser(matrix.shape[0], k), idempotent=True)

    def _binary_batch_request(
        self,
        path: str,
        body: bytes,
        content_type: str,
        search: _BatchSearch,
        timeout: TimeoutTypes | None,
    ) -> httpx.Request:
        """A binary batch: the array(s) as the body, ``k``, ``params`` and ``filter`` in the
        query string (the last two as JSON), the answer asked for as ``.npz``."""
        query = {"k": str(search.k)}
        if search.params:
            query["params"] = json.dumps(search.params, separators=(",", ":"))
        if search.filter is not None:
            query["filter"] = json.dumps(search.filter, separators=(",", ":"))
        return self._request(
            "POST",
            path,
            content=body,
            content_type=content_type,
            accept=NPZ_MEDIA_TYPE,
            query=query,
            timeout=timeout,
        )

    def _token_batch_call(
        self,
        path: str,
        queries: object,
        search: _BatchSearch,
        binary: bool,
        timeout: TimeoutTypes | None,
    ) -> Call[BatchResult]:
        tokens, offsets = batch_token_sets(queries)
        nq = offsets.shape[0] - 1
        if binary:
            body = encode_npz(tokens=tokens, offsets=offsets)
            request = self._binary_batch_request(path, body, NPZ_MEDIA_TYPE, search, timeout)
        else:
            sets = [np.ascontiguousarray(tokens[a:b]) for a, b in itertools.pairwise(offsets)]
            fields = search.json_fields({"token_sets": sets})
            request = self._request("POST", path, json_body=fields, timeout=timeout)
        return Call(request, batch_parser(nq, search.k), idempotent=True)

    def _load_call(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        reload: bool,
        timeout: TimeoutTypes | None,
    ) -> Call[CollectionInfo]:
        url_path = self._collection_path(name, "/reload" if reload else "/load")
        body = {"path": check_path(path)}
        request = self._request("POST", url_path, json_body=body, timeout=timeout)
        return Call(request, parser(CollectionInfo), idempotent=False)

    def _unload_call(self, name: str) -> Call[None]:
        request = self._request("DELETE", self._collection_path(name))
        return Call(request, parse_empty, idempotent=False)
