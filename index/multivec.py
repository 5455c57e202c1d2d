"""Token sets (multi-vector documents and queries): the container, validation, reading from
``.npz`` files or directories, token pooling and exact brute-force Chamfer (MaxSim) search.

A batch of token sets is stored flat, as in the contract's file format: ``tokens`` float32
[T, d] and ``offsets`` int64 [n + 1] with set ``i`` at rows ``offsets[i]:offsets[i + 1]``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glint.wire import tokensets

from .errors import DimensionError, FormatError, InputError, NotFoundError, prefixed_errors
from .kernels.maxsim import chamfer_from_sims, gather_tokens, ward_pool
from .metrics import normalize_rows
from .threads import run_spans
from .topk import TopK
from .validate import check_vectors

if TYPE_CHECKING:
    from .vecstore import VectorStore

__all__ = [
    "TokenSets",
    "as_token_sets",
    "exact_maxsim",
    "maxsim_scores",
    "pool_tokens",
    "read_token_sets",
    "rerank_chamfer",
]


@dataclass(frozen=True)
class TokenSets:
    """``n`` token sets: ``tokens`` float32 [T, d], ``offsets`` int64 [n + 1]."""

    tokens: np.ndarray
    offsets: np.ndarray

    @property
    def count(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def slice(self, start: int, stop: int) -> TokenSets:
        """Sets ``start:stop`` (tokens re-based to start at row 0)."""
        first, last = int(self.offsets[start]), int(self.offsets[stop])
        return TokenSets(self.tokens[first:last], self.offsets[start : stop + 1] - first)

    def normalized(self, *, what: str = "tokens") -> TokenSets:
        """Every token scaled to unit length (for the ``cos`` metric)."""
        return TokenSets(normalize_rows(self.tokens, what=what), self.offsets)

    @classmethod
    def from_list(cls, sets: Sequence[Any], *, what: str = "token sets") -> TokenSets:
        """Stack a sequence of [t_i, d] matrices."""
        mats = []
        for i, item in enumerate(sets):
            arr = np.asarray(item)
            if arr.ndim != 2:
                raise InputError(
                    f"{what}: set {i} must be a 2-D [tokens, d] matrix, got shape {arr.shape}"
                )
            if arr.shape[0] == 0:
                raise InputError(f"{what}: set {i} has no tokens (empty sets cannot be scored)")
            mats.append(arr)
        if not mats:
            raise InputError(f"{what}: no token sets given")
        widths = {m.shape[1] for m in mats}
        if len(widths) > 1:
            first = mats[0].shape[1]
            bad = next(i for i, m in enumerate(mats) if m.shape[1] != first)
            raise DimensionError(
                f"{what}: set {bad} has token dimension {mats[bad].shape[1]}, set 0 has {first}"
            )
        offsets = np.zeros(len(mats) + 1, np.int64)
        np.cumsum([m.shape[0] for m in mats], out=offsets[1:])
        return cls(np.concatenate(mats, axis=0), offsets)


def as_token_sets(data: Any, *, what: str = "token sets", dim: int | None = None) -> TokenSets:
    """Validate token sets given as a :class:`TokenSets`, a mapping (or ``.npz``) with
    ``tokens`` and ``offsets``, a ``(tokens, offsets)`` pair, a sequence of [t_i, d] matrices,
    or one [t, d] matrix (a single set)."""
    if isinstance(data, TokenSets):
        tokens, offsets = data.tokens, data.offsets
    elif isinstance(data, Mapping | np.lib.npyio.NpzFile):
        missing = [key for key in ("tokens", "offsets") if key not in data]
        if missing:
            raise InputError(f"{what}: missing {' and '.join(missing)} (need tokens and offsets)")
        tokens, offsets = data["tokens"], data["offsets"]
    elif isinstance(data, np.ndarray) and data.ndim == 2:
        tokens, offsets = data, np.array([0, data.shape[0]], np.int64)
    elif isinstance(data, tuple) and len(data) == 2 and np.asarray(data[1]).ndim == 1:
        tokens, offsets = data
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        sets = TokenSets.from_list(data, what=what)
        tokens, offsets = sets.tokens, sets.offsets
    else:
        raise InputError(
            f"{what}: expected token sets (tokens [T, d] with offsets [n + 1], a list of "
            f"[t, d] matrices, or one [t, d] matrix), got {type(data).__name__}"
        )
    try:  # the shape and offset checks are the wire's, shared with the service and client
        arr = tokensets.check_token_matrix(tokens, what=what)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if dim is not None and arr.shape[1] != dim:
        raise DimensionError(f"{what}: token dimension {arr.shape[1]} does not match {dim}")
    checked = check_vectors(arr, what=f"{what} tokens")
    try:
        checked_offsets = tokensets.check_offsets(offsets, checked.shape[0], what=what)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return TokenSets(checked, checked_offsets)


def read_token_sets(
    path: str | os.PathLike[str], *, what: str = "token sets", dim: int | None = None
) -> TokenSets:
    """Read token sets from a ``.npz`` file or a directory holding ``tokens.npy`` and
    ``offsets.npy`` (the tokens of a directory are memory-mapped while they are checked)."""
    src = Path(path)
    if not src.exists():
        raise NotFoundError(f"{src}: no such file or directory")
    if src.is_dir():
        files = {key: src / f"{key}.npy" for key in ("tokens", "offsets")}
        missing = [p.name for p in files.values() if not p.is_file()]
        if missing:
            raise InputError(
                f"{src}: a token-set directory needs tokens.npy and offsets.npy; "
                f"missing {', '.join(missing)}"
            )
        try:
            arrays = {
                key: np.load(p, mmap_mode="r", allow_pickle=False) for key, p in files.items()
            }
        except (ValueError, OSError) as exc:
            raise FormatError(f"{src}: unreadable array ({exc})") from None
        with prefixed_errors(str(src)):
            return as_token_sets(arrays, what=what, dim=dim)
    if src.suffix.lower() != ".npz":
        raise InputError(
            f"{src}: token sets must be a .npz file or a directory with tokens.npy and "
            f"offsets.npy, not {src.suffix or 'a file without suffix'!r}"
        )
    try:
        with np.load(src, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("tokens", "offsets") if key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{src}: not a readable .npz file ({exc})") from None
    with prefixed_errors(str(src)):
        return as_token_sets(arrays, what=what, dim=dim)


def pooled_offsets(offsets: np.ndarray, factor: int) -> np.ndarray:
    """Offsets after pooling each set of ``n`` tokens into ``ceil(n / factor)``."""
    kept = -(-np.diff(offsets) // factor)
    out = np.zeros(offsets.shape[0], np.int64)
    np.cumsum(kept, out=out[1:])
    return out


def pool_tokens(sets: TokenSets, factor: int, *, threads: int = 1) -> TokenSets:
    """Token pooling: cluster each set's tokens hierarchically (Ward) into
    ``ceil(n / factor)`` clusters and keep the cluster means (``factor=1``: unchanged).

    When every token has unit length (as ColBERT-style models emit them, and as ``cos``
    makes them), a cluster is represented by its mean scaled back to unit length (the
    spherical mean): a plain mean of diverse tokens is shorter, which would lower every
    Chamfer score of a document in proportion to how much of it was merged."""
    if factor <= 1:
        return sets
    out_off = pooled_offsets(sets.offsets, factor)
    out = np.empty((int(out_off[-1]), sets.dim), np.float32)

    def run(span: tuple[int, int]) -> None:
        a, b = span
        ward_pool(sets.tokens, sets.offsets[a : b + 1], factor, out_off[a : b + 1], out)

    run_spans(sets.count, threads, run)
    norms = np.linalg.norm(sets.tokens, axis=1)
    if np.abs(norms - 1.0).max(initial=0.0) < 1e-3:
        out = normalize_rows(out, zeros="keep")  # a pooled mean may cancel out
    return TokenSets(out, out_off)


# -- exact Chamfer --------------------------------------------------------------------------
_DOC_TOKEN_BLOCK = 32768


def maxsim_scores(docs: TokenSets, query: np.ndarray) -> np.ndarray:
    """Exact Chamfer similarity of one query [t, d] against every document (float32 [n])."""
    one = TokenSets(np.asarray(query, np.float32), np.array([0, len(query)], np.int64))
    out: np.ndarray = _block_scores(docs, one, 0, docs.count)[0]
    return out


def _block_scores(docs: TokenSets, queries: TokenSets, d0: int, d1: int) -> np.ndarray:
    """Chamfer scores [nq, d1 - d0] of ``queries`` against documents ``d0:d1``."""
    first, last = int(docs.offsets[d0]), int(docs.offsets[d1])
    block = np.asarray(docs.tokens[first:last], dtype=np.float32)
    sims = queries.tokens @ block.T  # [Tq, Tb]
    best = np.maximum.reduceat(sims, docs.offsets[d0:d1] - first, axis=1)  # [Tq, nb]
    return np.add.reduceat(best, queries.offsets[:-1], axis=0)  # [nq, nb]


def exact_maxsim(
    docs: TokenSets, queries: TokenSets, k: int, *, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` documents by Chamfer similarity: rows int64 [nq, k] and scores
    float32 [nq, k], best first (ties to the smaller row). Matrix products in BLAS, one span
    of queries per thread, documents in blocks of about 32k tokens."""
    bounds = _doc_blocks(docs.offsets)
    rows = np.empty((queries.count, k), np.int64)
    scores = np.empty((queries.count, k), np.float32)

    def run(span: tuple[int, int]) -> None:
        for q0 in range(span[0], span[1], 64):
            q1 = min(span[1], q0 + 64)
            part = queries.slice(q0, q1)
            top = TopK(q1 - q0, k)
            for d0, d1 in bounds:
                top.push(_block_scores(docs, part, d0, d1), d0)
            rows[q0:q1], scores[q0:q1] = top.result()

    run_spans(queries.count, threads, run)
    return rows, scores


def _doc_blocks(offsets: np.ndarray) -> list[tuple[int, int]]:
    out, start, n = [], 0, offsets.shape[0] - 1
    while start < n:
        stop = int(np.searchsorted(offsets, offsets[start] + _DOC_TOKEN_BLOCK, side="right")) - 1
        stop = min(n, max(start + 1, stop))
        out.append((start, stop))
        start = stop
    return out


def rerank_chamfer(
    store: VectorStore,
    doc_offsets: np.ndarray,
    sets: TokenSets,
    cand: np.ndarray,
    k: int,
    *,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Chamfer re-ranking of candidate documents on stored tokens.

    ``store`` holds every document's tokens (float32, float16 or LVQ-8) at rows
    ``doc_offsets[i]:doc_offsets[i + 1]``; ``cand`` int64 [nq, c] holds candidate rows per
    query of ``sets`` (-1 = none). Per query, the candidates' tokens are decoded into one
    float32 block, scored against the query's tokens with one matrix product (BLAS) and
    reduced to a Chamfer score per document; the best ``k`` are kept, best first (ties to the
    smaller row), padded with -1 / -inf."""
    nq, width = cand.shape
    kind, fdata, hdata, codes, lut = store.kernel_args()
    mean = store.mean
    offsets = np.asarray(doc_offsets)
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    out_rows = np.full((nq, k), -1, np.int64)
    out_scores = np.full((nq, k), -np.inf, np.float32)

    def run(span: tuple[int, int]) -> None:
        starts = np.empty(width, np.int64)
        ends = np.empty(width, np.int64)
        scores = np.empty(width, np.float32)
        for qi in range(span[0], span[1]):
            rows = cand[qi]
            valid = rows[rows >= 0]
            need = int((offsets[valid + 1] - offsets[valid]).sum())
            block = np.empty((max(need, 1), store.dim), np.float32)
            total = gather_tokens(
                rows, offsets, kind, fdata, hdata, codes, lut, block, starts, ends
            )
            q = sets[qi]
            sims = q @ block[:total].T
            if mean is not None:
                sims += (q @ mean)[:, None]
            chamfer_from_sims(sims, starts, ends, scores)
            valid = rows >= 0
            r, s = rows[valid], scores[valid]
            order = np.lexsort((r, -s))[:k]
            out_rows[qi, : len(order)] = r[order]
            out_scores[qi, : len(order)] = s[order]

    run_spans(nq, threads, run)
    return out_rows, out_scores
