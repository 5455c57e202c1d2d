"""glint's typed Python client.

::

    from glint.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as client:
        hits = client.search("docs", vector, k=10)
        batch = client.search_batch("docs", matrix, k=10)   # numpy in, numpy out
        hits = client.search("docs", vector, k=10, filter={"must": [
            {"key": "lang", "match": {"value": "en"}}]})      # or a typed Filter(...)

:class:`Client` and :class:`AsyncClient` have the same methods; the async ones are awaitable.
Errors are documented in :mod:`glint.client.errors`; the request and response models are those
of :mod:`glint.client.models`, shared with the server.
"""

from __future__ import annotations

from ._async_client import AsyncClient
from ._base import BatchResult, RetryConfig
from ._client import Client
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    GlintClientError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestTimeout,
    ResponseDecodeError,
    ServerError,
    TransportError,
    UnavailableError,
)
from .models import (
    NPY_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    BatchSearchRequest,
    BatchSearchResponse,
    CollectionInfo,
    CollectionList,
    ErrorBody,
    ErrorResponse,
    FieldCondition,
    Filter,
    HasIdCondition,
    Health,
    Hit,
    Include,
    IsEmptyCondition,
    IsEmptyKey,
    Match,
    MetricName,
    Range,
    SearchRequest,
    SearchResponse,
)

__all__ = [
    "NPY_MEDIA_TYPE",
    "NPZ_MEDIA_TYPE",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BatchResult",
    "BatchSearchRequest",
    "BatchSearchResponse",
    "Client",
    "CollectionInfo",
    "CollectionList",
    "ConflictError",
    "ErrorBody",
    "ErrorResponse",
    "FieldCondition",
    "Filter",
    "GlintClientError",
    "HasIdCondition",
    "Health",
    "Hit",
    "Include",
    "InvalidRequestError",
    "IsEmptyCondition",
    "IsEmptyKey",
    "Match",
    "MetricName",
    "NotFoundError",
    "PermissionDeniedError",
    "Range",
    "RequestTimeout",
    "ResponseDecodeError",
    "RetryConfig",
    "SearchRequest",
    "SearchResponse",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "__version__",
]
