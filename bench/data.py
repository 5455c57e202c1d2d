"""Benchmark datasets (the layout of ``shared/data/make_datasets.py``) and recall@10.

Dense datasets hold ``base.npy``, ``queries-{id,ood}.npy`` and ``gt-{id,ood}.npy``; synthetic
ones hold a single query set as ``queries.npy``/``gt.npy``, which serves as ``id``. Ground truth
is int32 [nq, >=10] row numbers in ``base``, best first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Dataset", "dataset_fingerprint", "load_dataset", "recall_at_10"]

log = logging.getLogger(__name__)

METRICS = ("ip", "l2", "cos")
RECALL_K = 10
RELATIVE_TIE_TOLERANCE = 1e-6


@dataclass
class Dataset:
    """A base, one query set and its exact ground truth."""

    name: str
    path: Path
    queries_name: str
    metric: str
    base: np.ndarray
    queries: np.ndarray
    gt: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nq(self) -> int:
        return int(self.queries.shape[0])

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])


def _metric_from_meta(meta: dict[str, Any], name: str) -> str:
    for value in (meta.get("metric"), (meta.get("config") or {}).get("metric")):
        if isinstance(value, str):
            word = value.strip().split(" ")[0].lower()
            if word in METRICS:
                return word
            if value.lower().startswith("inner product"):
                return "ip"
    return "l2" if name.startswith("synthetic") else "ip"


def _query_files(root: Path, queries: str) -> tuple[Path, Path]:
    named = (root / f"queries-{queries}.npy", root / f"gt-{queries}.npy")
    if named[0].exists() and named[1].exists():
        return named
    plain = (root / "queries.npy", root / "gt.npy")
    if queries == "id" and plain[0].exists() and plain[1].exists():
        return plain
    found = sorted(p.name for p in root.glob("queries*.npy"))
    raise FileNotFoundError(
        f"{root}: no query set {queries!r} (looked for {named[0].name} and {named[1].name}"
        f"{', or queries.npy and gt.npy' if queries == 'id' else ''}); found {found or 'none'}"
    )


def load_dataset(
    path: str | Path,
    queries: str = "id",
    *,
    nq: int | None = None,
    metric: str | None = None,
    mmap_base: bool = False,
) -> Dataset:
    """Load a dataset directory; ``nq`` keeps the first queries, ``metric`` overrides meta.json."""
    root = Path(path).expanduser()
    if not (root / "base.npy").exists():
        raise FileNotFoundError(f"{root}: no base.npy (is this a dense dataset directory?)")
    meta: dict[str, Any] = {}
    if (root / "meta.json").exists():
        meta = json.loads((root / "meta.json").read_text())
    name = str(meta.get("dataset") or root.name)
    q_path, gt_path = _query_files(root, queries)
    base = np.load(root / "base.npy", mmap_mode="r" if mmap_base else None)
    q = np.load(q_path)
    gt = np.load(gt_path)
    if nq is not None:
        if nq < 1:
            raise ValueError(f"nq must be >= 1, got {nq}")
        q, gt = q[:nq], gt[:nq]
    if gt.shape[0] != q.shape[0] or gt.ndim != 2 or gt.shape[1] < RECALL_K:
        raise ValueError(f"{gt_path}: ground truth {gt.shape} does not match queries {q.shape}")
    if q.shape[1] != base.shape[1]:
        raise ValueError(f"{q_path}: queries have dim {q.shape[1]}, base has {base.shape[1]}")
    chosen = metric or _metric_from_meta(meta, name)
    if chosen not in METRICS:
        raise ValueError(f"unknown metric {chosen!r}; expected one of {METRICS}")
    return Dataset(
        name=name,
        path=root,
        queries_name=queries,
        metric=chosen,
        base=base if mmap_base else np.ascontiguousarray(base, dtype=np.float32),
        queries=np.ascontiguousarray(q, dtype=np.float32),
        gt=np.ascontiguousarray(gt[:, :RECALL_K], dtype=np.int64),
        meta=meta,
    )


def dataset_fingerprint(path: str | Path) -> str:
    """A short key identifying a dataset's base: its recorded sha256, else size and mtime."""
    root = Path(path).expanduser().resolve()
    base_sha = None
    meta_path = root / "meta.json"
    if meta_path.exists():
        base_sha = (json.loads(meta_path.read_text()).get("files") or {}).get("base.npy")
    if not base_sha:
        stat = (root / "base.npy").stat()
        base_sha = f"{root}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(str(base_sha).encode()).hexdigest()[:12]


def _exact_scores(base: np.ndarray, queries: np.ndarray, rows: np.ndarray, metric: str) -> Any:
    """float64 larger-is-better scores of ``rows`` [nq, m] (negated squared distance for l2)."""
    vecs = np.asarray(base[np.maximum(rows, 0).ravel()], dtype=np.float64)
    vecs = vecs.reshape(rows.shape[0], rows.shape[1], -1)
    q = queries.astype(np.float64)
    if metric == "cos":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=2, keepdims=True), 1e-300)
    if metric == "l2":
        return -((vecs - q[:, None, :]) ** 2).sum(axis=2)
    return np.einsum("qmd,qd->qm", vecs, q)


def recall_at_10(
    ids: np.ndarray,
    gt: np.ndarray,
    base: np.ndarray,
    queries: np.ndarray,
    metric: str,
    *,
    chunk: int = 512,
) -> float:
    """Mean fraction of the exact top 10 found among the first 10 returned ``ids``.

    Tie-tolerant: a returned id counts if it is in ``gt[:, :10]`` or if its exact (float64)
    score is at least the 10th exact score minus 1e-6 relative. Duplicates and -1 count once
    and never, respectively.
    """
    ids = np.asarray(ids)[:, :RECALL_K]
    found = 0
    for start in range(0, ids.shape[0], chunk):
        got = ids[start : start + chunk].astype(np.int64)
        truth = gt[start : start + chunk, :RECALL_K].astype(np.int64)
        q = queries[start : start + chunk]
        tenth = _exact_scores(base, q, truth[:, RECALL_K - 1 :], metric)[:, 0]
        scores = _exact_scores(base, q, got, metric)
        threshold = tenth - RELATIVE_TIE_TOLERANCE * np.maximum(np.abs(tenth), 1e-30)
        valid = got >= 0
        ok = valid & ((scores >= threshold[:, None]) | (got[:, :, None] == truth[:, None]).any(2))
        for row, mask in zip(got, ok, strict=True):
            found += min(RECALL_K, len(set(row[mask].tolist())))
    return found / (ids.shape[0] * RECALL_K)
