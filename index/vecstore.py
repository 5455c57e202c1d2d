"""Vector storage for graph search: f32, f16, LVQ-8, LVQ-4 and the two-level LVQ-4x4/4x8.

:class:`VectorStore` owns the arrays of one storage kind, prepares queries for the kernels in
:mod:`glint.index.kernels.distances`, and saves/loads itself inside an index directory.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from .errors import FormatError
from .kernels.distances import F16, F32, LVQ4, LVQ4_INT, LVQ8, LVQ8_INT
from .kernels.intdot import HAS_AVX2, HAS_VNNI
from .kernels.queries import lvq_query_terms
from .lvq import encode_lvq, f16_powers, f16_table, parse_lvq_storage
from .metrics import Metric
from .storage import IndexReader, IndexWriter

__all__ = ["STORAGES", "PreparedQueries", "Storage", "VectorStore"]

Storage = Literal["f32", "f16", "lvq8", "lvq4", "lvq4x4", "lvq4x8"]
STORAGES: tuple[Storage, ...] = ("f32", "f16", "lvq8", "lvq4", "lvq4x4", "lvq4x8")

_F16_TABLE = f16_table()
_F16_POWERS = f16_powers()
_NO_F32 = np.zeros((1, 1), np.float32)
_NO_U16 = np.zeros((1, 1), np.uint16)
_NO_U8 = np.zeros((1, 5), np.uint8)


class PreparedQueries(NamedTuple):
    """Kernel-ready queries: ``q`` float32 [nq, dq] and per-query ``qsum``/``qmu``; for the
    integer kinds also ``q8`` int8 [nq, w] with ``q ≈ qscale · q8`` (else [nq, 1] zeros)."""

    q: np.ndarray
    qsum: np.ndarray
    qmu: np.ndarray
    q8: np.ndarray
    qscale: np.ndarray


class VectorStore:
    """The stored vectors of an index, in one storage kind."""

    def __init__(
        self,
        storage: Storage,
        dim: int,
        *,
        fdata: np.ndarray | None = None,
        hdata: np.ndarray | None = None,
        codes: np.ndarray | None = None,
        residual: np.ndarray | None = None,
        mean: np.ndarray | None = None,
    ) -> None:
        self.storage = storage
        self.dim = dim
        self.fdata = fdata
        self.hdata = hdata
        self.codes = codes
        self.residual = residual
        self.mean = mean
        if storage.startswith("lvq"):
            self.bits, self.residual_bits = parse_lvq_storage(storage)
        else:
            self.bits, self.residual_bits = 0, 0
        self.kind = {"f32": F32, "f16": F16}.get(storage, LVQ8 if self.bits == 8 else LVQ4)

    @classmethod
    def encode(cls, x: np.ndarray, storage: Storage) -> VectorStore:
        """Encode float32 [n, d] vectors (already normalised for ``cos``)."""
        dim = x.shape[1]
        if storage == "f32":
            return cls(storage, dim, fdata=np.ascontiguousarray(x, dtype=np.float32))
        if storage == "f16":
            return cls(storage, dim, hdata=x.astype(np.float16).view(np.uint16))
        bits, residual_bits = parse_lvq_storage(storage)
        lvq = encode_lvq(x, bits, residual_bits)
        return cls(storage, dim, codes=lvq.records, residual=lvq.residual, mean=lvq.mean)

    @property
    def has_residual(self) -> bool:
        return self.residual is not None

    def arrays(self) -> list[np.ndarray]:
        found = (self.fdata, self.hdata, self.codes, self.residual, self.mean)
        return [a for a in found if a is not None]

    def search_kind(self, metric: Metric) -> int:
        """The kernel kind a graph search uses: for inner products, the integer form of LVQ-8
        on a CPU with VNNI and of LVQ-4 on one with VNNI or AVX2 (:mod:`.kernels.intdot`),
        else :attr:`kind`. (For ``l2`` the integer form would need Σc and Σc² per vector,
        which the records do not hold.)"""
        if metric == "l2":
            return self.kind
        if self.kind == LVQ8 and HAS_VNNI:
            return LVQ8_INT
        if self.kind == LVQ4 and (HAS_VNNI or HAS_AVX2):
            return LVQ4_INT
        return self.kind

    def prepare(
        self, queries: np.ndarray, metric: Metric, kind: int | None = None
    ) -> PreparedQueries:
        """Queries (float32 [nq, dim], normalised for ``cos``) in the form the kernels of
        ``kind`` (default :attr:`kind`) take."""
        nq = queries.shape[0]
        zeros = np.zeros(nq, np.float32)
        no_q8, ones = np.zeros((nq, 1), np.int8), np.ones(nq, np.float32)
        if self.mean is None:
            return PreparedQueries(np.ascontiguousarray(queries), zeros, zeros, no_q8, ones)
        if metric == "l2":
            return PreparedQueries(
                np.ascontiguousarray(queries - self.mean, np.float32), zeros, zeros, no_q8, ones
            )
        q = np.ascontiguousarray(queries, np.float32)
        quantize = kind in (LVQ8_INT, LVQ4_INT)
        # the 8-bit query, padded to the codes' width: d bytes, or 2h for 4-bit codes
        width = 2 * ((self.dim + 1) // 2) if self.bits == 4 else self.dim
        q8 = np.empty((nq, width), np.int8) if quantize else no_q8
        qsum, qmu, scale = np.empty(nq, np.float32), np.empty(nq, np.float32), ones
        lvq_query_terms(q, self.mean, quantize, qsum, qmu, q8, scale)
        return PreparedQueries(q, qsum, qmu, q8, scale)

    def kernel_args(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(kind, fdata, hdata, codes, lut) for :func:`~glint.index.kernels.distances.score`."""
        return (
            self.kind,
            np.asarray(self.fdata) if self.fdata is not None else _NO_F32,
            np.asarray(self.hdata) if self.hdata is not None else _NO_U16,
            np.asarray(self.codes) if self.codes is not None else _NO_U8,
            _F16_TABLE if self.kind == F16 else _F16_POWERS,
        )

    def floats(self) -> np.ndarray:
        """The stored vectors as a float32 or float16 [n, dim] array (f32 and f16 storage)."""
        if self.fdata is not None:
            return self.fdata
        if self.hdata is not None:
            return self.hdata.view(np.float16)
        raise ValueError(f"storage {self.storage} holds codes, not floats")

    def residual_array(self) -> np.ndarray:
        return np.asarray(self.residual) if self.residual is not None else _NO_U8

    # -- persistence ----------------------------------------------------------------------
    _FILES: ClassVar[dict[str, str]] = {
        "fdata": "vectors.npy",
        "hdata": "vectors_f16.npy",
        "codes": "lvq_codes.npy",
        "residual": "lvq_residual.npy",
        "mean": "lvq_mean.npy",
    }

    _DTYPES: ClassVar[dict[str, np.dtype[Any]]] = {
        "fdata": np.dtype(np.float32),
        "hdata": np.dtype(np.uint16),
        "codes": np.dtype(np.uint8),
        "residual": np.dtype(np.uint8),
        "mean": np.dtype(np.float32),
    }

    def save(self, writer: IndexWriter) -> None:
        for attr, name in self._FILES.items():
            value = getattr(self, attr)
            if value is not None:
                writer.save_array(name, value)

    @classmethod
    def files(cls, reader: IndexReader, storage: Storage) -> set[str]:
        """The files of a ``storage`` store, as ``reader`` sees them."""
        attrs = {"f32": ["fdata"], "f16": ["hdata"]}.get(storage)
        if attrs is None:
            attrs = ["codes", "mean"] + (["residual"] if parse_lvq_storage(storage)[1] else [])
        legacy = cls._FILES["fdata"]
        if storage == "f16" and reader.format_version == 1 and reader.has(legacy):
            return {legacy}  # flat indices of glint 0.1 kept f16 vectors in vectors.npy
        return {cls._FILES[attr] for attr in attrs}

    @classmethod
    def load(cls, reader: IndexReader, storage: Storage, dim: int, count: int) -> VectorStore:
        arrays = {
            attr: reader.load_array(name) for attr, name in cls._FILES.items() if reader.has(name)
        }
        legacy = arrays.get("fdata")
        if storage == "f16" and legacy is not None and legacy.dtype == np.float16:
            # flat indices of glint 0.1 kept f16 vectors as float16 in vectors.npy
            arrays["hdata"] = arrays.pop("fdata").view(np.uint16)
        store = cls(storage, dim, **arrays)
        expected = cls._expected_shapes(store, count)
        for attr, shape in expected.items():
            value = getattr(store, attr)
            if value is None or value.shape != shape:
                got = None if value is None else value.shape
                raise FormatError(
                    f"{reader.root}: damaged index, {cls._FILES[attr]} has shape {got}, "
                    f"expected {shape} for storage {storage}"
                )
            if value.dtype != cls._DTYPES[attr]:
                raise FormatError(
                    f"{reader.root}: damaged index, {cls._FILES[attr]} holds {value.dtype}, "
                    f"expected {cls._DTYPES[attr]} for storage {storage}"
                )
        return store

    @staticmethod
    def _expected_shapes(store: VectorStore, count: int) -> dict[str, tuple[int, ...]]:
        if store.storage == "f32":
            return {"fdata": (count, store.dim)}
        if store.storage == "f16":
            return {"hdata": (count, store.dim)}

        def width(bits: int) -> int:
            return store.dim if bits == 8 else (store.dim + 1) // 2

        shapes: dict[str, tuple[int, ...]] = {
            "codes": (count, width(store.bits) + 4),
            "mean": (store.dim,),
        }
        if store.residual_bits:
            shapes["residual"] = (count, width(store.residual_bits))
        return shapes
