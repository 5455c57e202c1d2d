"""Response parsing: an answer becomes a wire model, a :class:`BatchResult` or an error.

Error statuses raise the :class:`~glint.client.errors.APIError` subclass of their status; a
2xx answer that breaks the wire contract raises
:class:`~glint.client.errors.ResponseDecodeError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, get_args

import httpx
import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ValidationError

from glint.wire import (
    JSON_MEDIA_TYPE,
    METRIC_HEADER,
    TOOK_MS_HEADER,
    DecodeError,
    decode_npz,
    media_type,
)

from .errors import ResponseDecodeError, error_from_response
from .models import BatchSearchResponse, CollectionInfo, CollectionList, MetricName

__all__ = [
    "BatchResult",
    "batch_parser",
    "parse_collections",
    "parse_empty",
    "parse_ready",
    "parser",
]

M = TypeVar("M", bound=BaseModel)

_METRICS: tuple[str, ...] = get_args(MetricName)
_SMALLER_IS_BETTER = frozenset({"l2"})
_OK = range(200, 300)


class BatchResult(NamedTuple):
    """The answer to :meth:`Client.search_batch`.

    Rows are queries, columns hits, best first. Rows with fewer than ``k`` hits are padded with
    id ``-1`` and score ``-inf`` (when a larger score is better) or ``+inf`` (``l2``).
    """

    ids: npt.NDArray[np.int64]
    """int64 ``[nq, k]``."""
    scores: npt.NDArray[np.float32]
    """float32 ``[nq, k]``."""
    metric: str
    """The collection's metric: ``"ip"``, ``"cos"`` or ``"l2"``."""
    took_ms: float
    """Server-side search time in milliseconds."""

    @property
    def larger_is_better(self) -> bool:
        """Whether a larger score is a closer match (false for ``l2``)."""
        return self.metric not in _SMALLER_IS_BETTER


def _decode_error(response: httpx.Response, what: str) -> ResponseDecodeError:
    request = response.request
    return ResponseDecodeError(f"{request.method} {request.url.path}: {what}", response=response)


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code not in _OK:
        raise error_from_response(response)


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(response, f"response is not valid JSON: {exc}") from None


def _model(response: httpx.Response, model: type[M]) -> M:
    data = _json(response)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _decode_error(response, f"response does not match {model.__name__}: {exc}") from None


def parser(model: type[M]) -> Callable[[httpx.Response], M]:
    """The parser of a call answered with a JSON ``model``."""

    def parse(response: httpx.Response) -> M:
        _raise_for_status(response)
        return _model(response, model)

    return parse


def _pad_score(larger_is_better: bool) -> float:
    return -math.inf if larger_is_better else math.inf


def _json_batch(response: httpx.Response, nq: int, k: int) -> BatchResult:
    body = _model(response, BatchSearchResponse)
    if len(body.ids) != nq or len(body.scores) != nq:
        raise _decode_error(
            response,
            f"expected {nq} result rows, got {len(body.ids)} ids and {len(body.scores)} scores",
        )
    ids = np.full((nq, k), -1, dtype=np.int64)
    scores = np.full((nq, k), _pad_score(body.larger_is_better), dtype=np.float32)
    for row, (row_ids, row_scores) in enumerate(zip(body.ids, body.scores, strict=True)):
        n = len(row_ids)
        if n != len(row_scores) or n > k:
            raise _decode_error(
                response,
                f"row {row} has {n} ids and {len(row_scores)} scores (k={k})",
            )
        if n:
            ids[row, :n] = row_ids
            scores[row, :n] = row_scores
    return BatchResult(ids, scores, body.metric, body.took_ms)


def _npz_batch(response: httpx.Response, nq: int, k: int) -> BatchResult:
    metric = response.headers.get(METRIC_HEADER)
    if metric not in _METRICS:
        raise _decode_error(response, f"missing or unknown {METRIC_HEADER} header: {metric!r}")
    try:
        took_ms = float(response.headers.get(TOOK_MS_HEADER, ""))
    except ValueError:
        raise _decode_error(response, f"missing or invalid {TOOK_MS_HEADER} header") from None
    try:
        arrays = decode_npz(response.content, ("ids", "scores"), what="response")
    except DecodeError as exc:
        raise _decode_error(response, str(exc)) from None
    if len(arrays) != 2:
        raise _decode_error(response, f"response npz holds {sorted(arrays)}, not ids and scores")
    raw_ids, raw_scores = arrays["ids"], arrays["scores"]
    if (
        raw_ids.ndim != 2
        or raw_ids.shape != raw_scores.shape
        or raw_ids.shape[0] != nq
        or raw_ids.shape[1] > k
        or raw_ids.dtype.kind not in "iu"
        or raw_scores.dtype.kind != "f"
    ):
        raise _decode_error(
            response,
            f"expected ids and scores of shape ({nq}, {k}), got ids {raw_ids.dtype}"
            f"{raw_ids.shape} and scores {raw_scores.dtype}{raw_scores.shape}",
        )
    ids = raw_ids.astype(np.int64, copy=False)
    scores = raw_scores.astype(np.float32, copy=False)
    if ids.shape[1] < k:  # tolerate a server that does not pad to k
        larger = metric not in _SMALLER_IS_BETTER
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=_pad_score(larger))
    return BatchResult(ids, scores, str(metric), took_ms)


def batch_parser(nq: int, k: int) -> Callable[[httpx.Response], BatchResult]:
    """The parser of a batch of ``nq`` queries: JSON or ``.npz``, as the server answered."""

    def parse(response: httpx.Response) -> BatchResult:
        _raise_for_status(response)
        if media_type(response.headers.get("content-type", "")) == JSON_MEDIA_TYPE:
            return _json_batch(response, nq, k)
        return _npz_batch(response, nq, k)

    return parse


def parse_ready(response: httpx.Response) -> bool:
    if response.status_code == 200:
        return True
    if response.status_code == 503:
        return False
    raise error_from_response(response)


def parse_collections(response: httpx.Response) -> list[CollectionInfo]:
    _raise_for_status(response)
    return _model(response, CollectionList).collections


def parse_empty(response: httpx.Response) -> None:
    _raise_for_status(response)
