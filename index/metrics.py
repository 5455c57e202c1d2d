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

from .errors import ConfigError

Metric = Literal["ip", "cos", "l2"]
METRICS: tuple[Metric, ...] = ("ip", "cos", "l2")


def check_metric(metric: str) -> Metric:
    """Return ``metric`` if it is known, else raise :class:`ConfigError` listing the valid ones."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    return metric


def larger_is_better(metric: Metric) -> bool:
    """Whether a larger user-facing score means a closer match."""
    return metric != "l2"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of a float32 [n, d] matrix; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-30), out=norms)
    out: np.ndarray = (x / norms).astype(np.float32, copy=False)
    return out


def to_user_scores(metric: Metric, internal: np.ndarray) -> np.ndarray:
    """Turn internal larger-is-better scores [nq, k] into the metric's user convention."""
    if metric == "l2":
        out: np.ndarray = np.negative(internal, dtype=np.float32)
        return out
    return internal.astype(np.float32, copy=False)
