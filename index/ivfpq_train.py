"""Training an ``ivfpq`` index's faiss part: the lists, the codes and the choices a build
makes from the data (``auto`` values, residual coding, the training sample)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ConfigError
from .metrics import Metric
from .threads import faiss_threads

__all__ = ["auto_m", "auto_nlist", "factory_string", "resolve", "train_faiss"]

log = logging.getLogger(__name__)

SEED = 20261122
TRAIN_PER_LIST = 256  # faiss's k-means samples at most this many vectors per centroid
WELL_TRAINED = 39  # below this many vectors per list, k-means quality suffers
_ADD_CHUNK = 65536


def auto_nlist(n: int) -> int:
    """About 2·√n lists, a power of two, with at least 39 training vectors per list."""
    target = 2 ** round(math.log2(max(1.0, 2.0 * math.sqrt(n))))
    return int(max(1, min(target, n // WELL_TRAINED)))


def _divisors(dim: int) -> list[int]:
    return [m for m in range(1, dim + 1) if dim % m == 0]


def auto_m(dim: int) -> int:
    """The most sub-quantizers that keep at least 4 dimensions each (m divides ``dim``)."""
    fits = [m for m in _divisors(dim) if dim // m >= 4]
    return fits[-1] if fits else 1


def check_m(m: int, dim: int) -> None:
    if dim % m == 0:
        return
    divisors = _divisors(dim)
    below = [d for d in divisors if d < m][-2:]
    above = [d for d in divisors if d > m][:2]
    raise ConfigError(
        f"ivfpq: m={m} does not divide the dimension {dim} (each sub-quantizer codes dim/m "
        f"dimensions); use one of {', '.join(map(str, below + above))}"
    )


def factory_string(nlist: int, m: int, nbits: int, opq: bool, residual: bool = False) -> str:
    """The faiss index_factory string of a resolved config (``r``: codes of residuals; for
    8-bit codes faiss encodes residuals unless the index is told otherwise, and ``np`` skips
    the polysemous training that only a Hamming-filtered search would use and that dominates
    the build)."""
    pq = f"PQ{m}x4fs{'r' if residual else ''}" if nbits == 4 else f"PQ{m}x8np"
    return f"{f'OPQ{m},' if opq else ''}IVF{nlist},{pq}"


def residual_share(sample: np.ndarray, nlist: int) -> float:
    """The share of the sample's variance left after subtracting each vector's nearest of
    ``nlist`` k-means centroids (a quick k-means on at most 64 vectors per list).

    PQ codes either the vectors or their residuals from the list centroid. Residuals win when
    the lists explain most of the variance (strongly clustered data, like the tests') and
    lose a little when they explain less (MiniLM embeddings: ``glint info`` shows the share
    each build measured), so the build codes residuals below 0.5.
    """
    import faiss

    n, dim = sample.shape
    rng = np.random.default_rng(SEED + 1)
    take = min(n, 64 * nlist)
    sub = np.ascontiguousarray(sample[rng.choice(n, take, replace=False)] if take < n else sample)
    kmeans = faiss.Kmeans(
        dim, nlist, niter=10, seed=SEED, min_points_per_centroid=1, max_points_per_centroid=64
    )
    kmeans.train(sub)
    dist, _ = kmeans.index.search(sub, 1)
    total = float(((sub - sub.mean(axis=0)) ** 2).sum(axis=1).mean())
    return float(dist.mean()) / total if total > 0 else 1.0


def resolve(
    nlist_spec: int | str, m_spec: int | str, nbits: int, n: int, dim: int
) -> tuple[int, int, int]:
    """Replace ``auto`` values and validate against ``n`` vectors of ``dim`` dimensions;
    returns ``nlist``, ``m`` and the training sample size."""
    nlist = auto_nlist(n) if nlist_spec == "auto" else int(nlist_spec)
    m = auto_m(dim) if m_spec == "auto" else int(m_spec)
    check_m(m, dim)
    n_train = min(n, TRAIN_PER_LIST * nlist)
    if nlist > n_train:
        raise ConfigError(
            f"ivfpq: nlist={nlist} is larger than the training sample ({n_train} vectors); "
            f"use nlist={auto_nlist(n)} (or nlist=auto)"
        )
    if n_train < 1 << nbits:
        raise ConfigError(
            f"ivfpq: nbits={nbits} trains {1 << nbits} centroids per "
            f"sub-quantizer and needs at least that many vectors; there are {n_train}"
        )
    if n_train < WELL_TRAINED * nlist:
        log.warning(
            "ivfpq: %d training vectors for %d lists (under %d per list); consider nlist=%d",
            n_train,
            nlist,
            WELL_TRAINED,
            auto_nlist(n),
        )
    return nlist, m, n_train


def _train_quietly(index: Any, sample: np.ndarray, m: int, nbits: int) -> None:
    """Train without faiss printing a warning per k-means run on small samples (glint logs
    its own), and fit an OPQ rotation for the code width actually used."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    ivf.cp.min_points_per_centroid = 1
    faiss.downcast_index(ivf).pq.cp.min_points_per_centroid = 1
    if not isinstance(index, faiss.IndexPreTransform):
        index.train(sample)
        return
    opq = faiss.downcast_VectorTransform(index.chain.at(0))
    pq = faiss.ProductQuantizer(sample.shape[1], m, nbits)
    pq.cp.min_points_per_centroid = 1
    opq.pq = pq  # borrowed by the OPQ matrix during training only
    try:
        index.train(sample)
    finally:
        opq.pq = None  # no pointer to ``pq`` may outlive it


def train_faiss(
    x: np.ndarray,
    layout: tuple[int, int, int, bool],
    metric: Metric,
    n_train: int,
    threads: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train and fill a faiss index of ``layout`` (nlist, m, nbits, opq: resolved values);
    returns it and what the build chose (the factory string, whether codes are of
    residuals)."""
    import faiss

    n, dim = x.shape
    nlist, m, nbits, opq = layout
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    rng = np.random.default_rng(SEED)
    rows = np.sort(rng.choice(n, n_train, replace=False)) if n_train < n else slice(None)
    sample = np.ascontiguousarray(x[rows], dtype=np.float32)
    with faiss_threads(threads):
        share = residual_share(sample, nlist)
        residual = share < 0.5
        text = factory_string(nlist, m, nbits, opq, residual)
        index = faiss.index_factory(dim, text, faiss_metric)
        faiss.extract_index_ivf(index).by_residual = residual
        log.info("ivfpq: training %s on %d vectors (residual share %.2f)", text, n_train, share)
        _train_quietly(index, sample, m, nbits)
        for start in range(0, n, _ADD_CHUNK):
            index.add(np.ascontiguousarray(x[start : start + _ADD_CHUNK], dtype=np.float32))
            if progress is not None:
                progress(min(_ADD_CHUNK, n - start))
    info = {"faiss": text, "residual": residual, "residual_share": round(share, 3)}
    return index, info
