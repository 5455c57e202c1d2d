"""Similarity metrics and the one place where internal scores become user-facing scores.

Kernels always rank by an *internal* score where larger is better:

- ``ip``: the inner product;
- ``cos``: the inner product of L2-normalised vectors;
- ``l2``: the negated squared Euclidean distance.

Users see ``ip``/``cos`` scores as they are (larger is better) and ``l2`` as the squared distance
(smaller is better). :func:`to_user_scores` is the only conversion.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .errors import ConfigError, InputError

Metric = Literal["ip", "cos", "l2"]
METRICS: tuple[Metric, ...] = ("ip", "cos", "l2")


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TINY_SQUARE = 1e-30  # above float32's subnormals: the float32 path keeps full precision


def check_metric(metric: str) -> Metric:
    """Return ``metric`` if it is known, else raise :class:`ConfigError` listing the valid ones."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    return metric


def larger_is_better(metric: Metric) -> bool:
    """Whether a larger user-facing score means a closer match."""
    return metric != "l2"


def normalize_rows(
    x: np.ndarray, *, what: str | None = None, zeros: Literal["refuse", "keep"] = "refuse"
) -> np.ndarray:
    """L2-normalise the rows of a finite float32 [n, d] matrix (what ``cos`` compares).

    A row of zeros has no direction, so no cosine: by default it is refused (an
    :class:`InputError` naming ``what``, if given, and the first such row), for the vectors of
    a build as for queries, as Elasticsearch does for its ``cosine`` vectors. With a zero query
    every score would tie at 0 and the "nearest" hits would be arbitrary; a zero vector in an
    index would score 0 against every query, the same as one orthogonal to it, which hides
    broken input rather than ranking it. ``zeros="keep"`` leaves such rows at zero, for callers
    whose zero rows are expected (a pooled token mean that cancelled out, say).

    Norms are computed in float64, so a row of tiny (even subnormal) values is normalised like
    any other instead of underflowing to a zero norm.
    """
    fast = np.einsum("ij,ij->i", x, x)
    # The common case, every squared norm well inside float32's range, in float32 with no
    # masks (a single query pays a few microseconds); the rare ones (a zero row, squares
    # that underflow or overflow float32) again in float64.
    if fast.size and fast.min() > _TINY_SQUARE and fast.max() < np.inf:
        quick: np.ndarray = np.divide(x, np.sqrt(fast)[:, None], dtype=np.float32)
        return quick
    squares = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    norms64 = np.sqrt(squares)
    if squares.size and squares.min() == 0.0:
        zero = squares == 0.0
        if zeros == "refuse":
            row = int(np.argmax(zero))
            where = f"{what}: row {row}" if what else f"row {row}"
            raise InputError(
                f"{where} is all zeros: the cos metric compares directions and a zero vector "
                "has none (drop the row, or use metric ip or l2)"
            )
        norms64[zero] = 1.0  # zero rows stay zero
    if squares.size and norms64.max() > _FLOAT32_MAX:  # divide those rows in float64
        out: np.ndarray = (x / norms64[:, None]).astype(np.float32)
        return out
    out = np.divide(x, norms64.astype(np.float32)[:, None], dtype=np.float32)
    return out


def to_user_scores(metric: Metric, internal: np.ndarray) -> np.ndarray:
    """Turn internal larger-is-better scores [nq, k] into the metric's user convention."""
    if metric == "l2":
        out: np.ndarray = np.negative(internal, dtype=np.float32)
        return out
    return internal.astype(np.float32, copy=False)
