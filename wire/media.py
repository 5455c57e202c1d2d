"""Media types and headers of the REST API.

Binary batch transport (``POST /v1/collections/{name}/search/batch``):

- request: ``Content-Type: application/x-npy`` with a float32 ``[nq, dim]`` array (or, for a
  multi-vector collection, ``application/x-npz`` with ``tokens`` and ``offsets``); ``k`` and
  ``params`` (a JSON object) go in the query string;
- response: with ``Accept: application/x-npz`` the body is an ``.npz`` holding ``ids`` (int64
  ``[nq, k]``, padded with -1) and ``scores`` (float32 ``[nq, k]``); the metric and the time
  taken come in the :data:`METRIC_HEADER` and :data:`TOOK_MS_HEADER` headers. Otherwise the
  answer is JSON.
"""

from __future__ import annotations

__all__ = [
    "JSON_MEDIA_TYPE",
    "METRIC_HEADER",
    "NPY_MEDIA_TYPE",
    "NPZ_MEDIA_TYPE",
    "TOOK_MS_HEADER",
    "media_type",
]

JSON_MEDIA_TYPE = "application/json"
NPY_MEDIA_TYPE = "application/x-npy"
NPZ_MEDIA_TYPE = "application/x-npz"

METRIC_HEADER = "X-Glint-Metric"
"""The collection's metric (``ip``, ``cos`` or ``l2``) on a binary batch answer."""
TOOK_MS_HEADER = "X-Glint-Took-Ms"
"""The server-side search time in milliseconds on a binary batch answer."""


def media_type(content_type: str) -> str:
    """The bare, lower-case media type of a ``Content-Type`` value (parameters dropped)."""
    return content_type.split(";")[0].strip().lower()
