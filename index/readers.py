"""Input readers for the indexer: vectors, ids and payloads from files, validated.

:func:`read_vectors` picks a reader from the file suffix (case-insensitive):

========================  ====================================================================
``.npy``                  a 2-D numeric array, memory-mapped (``allow_pickle=False``)
``.fvecs``/``.bvecs``     TEXMEX records: an int32 dimension ``d`` then ``d`` float32 / uint8 /
``.ivecs``                int32 values, little-endian
``.hdf5``/``.h5``         the ann-benchmarks layout: dataset ``train`` (the base vectors) or
                          ``test`` (the queries), as ``dataset=`` says (needs
                          ``glint-vector[hdf5]``)
``.parquet``              column ``vector`` (list of numbers), optional integer column ``id``;
                          every other column becomes the row's payload; ``columns=``
                          (:class:`ParquetColumns`) chooses others (needs ``glint-vector[parquet]``)
========================  ====================================================================

Whatever the format, vectors come back as a float32, C-contiguous ``[n, d]`` array that went
through :func:`check_vectors`, and ids through :func:`check_ids`. Every error is one line that
starts with the file path and says where the problem is (row, record, column or line). Rows are
numbered from 0; lines of text files from 1.

:func:`read_ground_truth` reads the true neighbours of a set of queries (``.ivecs``, ``.npy``,
or the ``neighbors`` dataset of an ann-benchmarks ``.hdf5`` file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from .errors import FormatError, InputError, NotFoundError, one_line, prefixed_errors
from .parquet import ParquetColumns, read_parquet
from .payloads import read_payload_lines
from .validate import check_ids, check_vectors

__all__ = [
    "ParquetColumns",
    "VectorData",
    "read_ground_truth",
    "read_ids",
    "read_ivecs",
    "read_payloads",
    "read_vectors",
]

logger = logging.getLogger(__name__)


_TEXMEX_DTYPES: dict[str, np.dtype] = {
    ".fvecs": np.dtype("<f4"),
    ".bvecs": np.dtype("u1"),
    ".ivecs": np.dtype("<i4"),
}
_ID_SUFFIXES = (".npy", ".txt", ".csv")
_HDF5_SUFFIXES = (".hdf5", ".h5")
_TRUTH_SUFFIXES = (".ivecs", ".npy", *_HDF5_SUFFIXES)


@dataclass(frozen=True, eq=False)
class VectorData:
    """Vectors read from one input file, with the ids and payloads it carried, if any.

    Attributes:
        vectors: float32, C-contiguous, shape ``[n, d]``; may be a read-only view of a
            memory-mapped ``.npy`` file.
        ids: int64, shape ``[n]``, unique; ``None`` means the ids are the row numbers.
        payloads: ``n`` JSON-serialisable dicts (or ``None`` for a row without payload), or
            ``None`` when the file carries no payloads.
    """

    vectors: np.ndarray
    ids: np.ndarray | None = None
    payloads: list[dict[str, Any] | None] | None = None


# --------------------------------------------------------------------------------------------
# public readers


def read_vectors(
    path: str | os.PathLike[str],
    *,
    dim: int | None = None,
    what: str = "vectors",
    dataset: str = "train",
    columns: ParquetColumns | None = None,
) -> VectorData:
    """Read vectors (and, from parquet, ids and payloads) from ``path``; see the module docs.

    Args:
        path: an existing file; its suffix picks the format.
        dim: the expected dimension, if known (:class:`DimensionError` otherwise).
        what: what the vectors are, for error messages (``"vectors"``, ``"queries"``, ...).
        dataset: the dataset of an ``.hdf5`` file: ``"train"`` (the ann-benchmarks base
            vectors) or ``"test"`` (its queries); other formats ignore it.
        columns: which parquet columns hold the vectors, ids and payloads (default
            :class:`ParquetColumns`); only for ``.parquet`` files.

    Returns:
        A :class:`VectorData`; ``vectors`` is float32 C-contiguous ``[n, d]``.

    Raises:
        NotFoundError: ``path`` does not exist.
        InputError: unknown suffix, empty file, bad values, missing dataset/column, ...
        FormatError: the file is truncated or corrupt.
    """
    src = _existing_file(path)
    suffix = _suffix(src, _VECTOR_READERS, what)
    reader = _VECTOR_READERS[suffix]
    if columns is not None and suffix != ".parquet":
        raise InputError(f"{src}: vector, id and payload columns can be chosen in .parquet only")
    _require_nonempty(src)
    if suffix in _HDF5_SUFFIXES:
        raw, ids, payloads = _read_hdf5(src, dataset)
    elif suffix == ".parquet":
        raw, ids, payloads = read_parquet(src, columns)
    else:
        raw, ids, payloads = reader(src)
    with prefixed_errors(src):
        vectors = check_vectors(raw, what=what, dim=dim)
    logger.info(
        "read %d %s of dim %d from %s%s%s",
        vectors.shape[0],
        what,
        vectors.shape[1],
        src,
        " with ids" if ids is not None else "",
        " with payloads" if payloads is not None else "",
    )
    return VectorData(vectors=vectors, ids=ids, payloads=payloads)


def read_ground_truth(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the true neighbours of a batch of queries as int64 ``[nq, m]``, row ``i`` holding
    query ``i``'s neighbours best first: ``.ivecs``, ``.npy`` (a 2-D integer array) or the
    ``neighbors`` dataset of an ann-benchmarks ``.hdf5`` file. Entries are ids as an index
    returns them (ann-benchmarks files hold row numbers of ``train``); -1 marks none."""
    src = _existing_file(path)
    suffix = _suffix(src, _TRUTH_SUFFIXES, "ground truth")
    _require_nonempty(src)
    if suffix == ".ivecs":
        raw = _read_texmex(src, _TEXMEX_DTYPES[".ivecs"])
    elif suffix == ".npy":
        raw = _read_npy(src)[0]
    else:
        raw = _hdf5_dataset(src, "neighbors")
    if raw.ndim != 2 or raw.dtype.kind not in "iu":
        raise InputError(
            f"{src}: ground truth must be a 2-D array of integer ids [queries, neighbours], "
            f"got shape {tuple(raw.shape)} of {raw.dtype}"
        )
    if raw.size == 0:
        raise InputError(f"{src}: ground truth is empty, shape {tuple(raw.shape)}")
    out = np.ascontiguousarray(raw, dtype=np.int64)
    logger.debug("read %d x %d ground-truth ids from %s", out.shape[0], out.shape[1], src)
    return out


def read_ids(path: str | os.PathLike[str], n: int) -> np.ndarray:
    """Read ``n`` unique integer ids: ``.npy`` (1-D integer array) or text, one id per line.

    Text files (``.txt``, ``.csv``) hold one integer per line, surrounding whitespace allowed;
    trailing blank lines are ignored, other blank lines are errors.

    Returns:
        int64 ``[n]``.
    """
    src = _existing_file(path)
    suffix = _suffix(src, _ID_SUFFIXES, "ids")
    _require_nonempty(src)
    if suffix == ".npy":
        try:
            raw = np.load(src, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FormatError(f"{src}: not a readable .npy file: {one_line(exc)}") from None
    else:
        raw = _parse_int_lines(src)
    with prefixed_errors(src):
        ids = check_ids(raw, n)
    logger.debug("read %d ids from %s", n, src)
    return ids


def read_payloads(path: str | os.PathLike[str], n: int) -> list[dict[str, Any] | None]:
    """Read ``n`` payloads from JSON Lines: line ``i + 1`` is row ``i``'s object, or ``null``
    (:func:`glint.index.payloads.read_payload_lines`, which names the true line of an error)."""
    payloads = read_payload_lines(path, n)
    logger.debug("read %d payloads from %s", n, path)
    return payloads


def read_ivecs(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a TEXMEX ``.ivecs`` file (e.g. ground-truth neighbour ids) as int32 ``[n, d]``."""
    src = _existing_file(path)
    _require_nonempty(src)
    records = _read_texmex(src, _TEXMEX_DTYPES[".ivecs"])
    out = np.ascontiguousarray(records, dtype=np.int32)
    logger.debug("read %d x %d ivecs from %s", out.shape[0], out.shape[1], src)
    return out


# --------------------------------------------------------------------------------------------
# helpers


def _existing_file(path: str | os.PathLike[str]) -> str:
    """``path`` as a string, if it names an existing regular file."""
    src = os.fspath(path)
    if not os.path.exists(src):
        raise NotFoundError(f"{src}: no such file")
    if os.path.isdir(src):
        raise InputError(f"{src}: is a directory, expected a file")
    return src


def _suffix(src: str, supported: Collection[str], what: str) -> str:
    """``src``'s suffix (lower case), if it is one of ``supported``; else an error naming them."""
    suffix = Path(src).suffix.lower()
    if suffix not in supported:
        raise InputError(
            f"{src}: unsupported suffix {suffix or '(none)'!r} for {what}; supported: "
            f"{', '.join(supported)}"
        )
    return suffix


def _require_nonempty(src: str) -> None:
    if os.path.getsize(src) == 0:
        raise InputError(f"{src}: empty file (0 bytes)")


def _parse_int_lines(src: str) -> np.ndarray:
    """Parse a text file holding one integer per line into int64 ``[lines]``."""
    try:
        with open(src, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise FormatError(f"{src}: not valid UTF-8: {one_line(exc)}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{src}: no ids (only blank lines)")
    try:
        return np.char.strip(np.array(lines, dtype=str)).astype(np.int64)
    except (ValueError, OverflowError):
        pass
    # Slow path, only to say which line is bad.
    for i, line in enumerate(lines):
        try:
            value = int(line.strip())
        except ValueError:
            raise FormatError(
                f"{src}: line {i + 1} (row {i}) is not an integer: {line.strip()!r}"
            ) from None
        if not -(2**63) <= value < 2**63:
            raise InputError(f"{src}: line {i + 1} (row {i}): id {value} does not fit in int64")
    raise FormatError(f"{src}: could not parse the ids as int64")


# --------------------------------------------------------------------------------------------
# format readers: each returns (raw vectors, ids or None, payloads or None)

_Read: TypeAlias = "tuple[np.ndarray, np.ndarray | None, list[dict[str, Any] | None] | None]"


def _read_npy(src: str) -> _Read:
    try:
        data = np.load(src, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FormatError(f"{src}: not a readable .npy file: {one_line(exc)}") from None
    if not isinstance(data, np.ndarray):  # np.load of an .npz-in-disguise returns NpzFile
        raise FormatError(f"{src}: not a .npy array file")
    return data, None, None


def _read_texmex(src: str, value_dtype: np.dtype) -> np.ndarray:
    """Memory-map TEXMEX records and return the ``[n, d]`` values (a strided, read-only view)."""
    size = os.path.getsize(src)
    if size == 0:
        raise InputError(f"{src}: empty file (0 bytes)")
    if size < 4:
        raise FormatError(f"{src}: truncated: {size} bytes is too short for a record header")
    d = int(np.fromfile(src, dtype="<i4", count=1)[0])
    if d <= 0:
        raise FormatError(f"{src}: record 0 has dimension {d}; expected a positive int32")
    record_size = 4 + d * value_dtype.itemsize
    if size % record_size:
        raise FormatError(
            f"{src}: truncated: {size} bytes is not a multiple of the record size "
            f"{record_size} (dim {d})"
        )
    n = size // record_size
    record = np.dtype([("dim", "<i4"), ("values", value_dtype, (d,))])
    records = np.memmap(src, dtype=record, mode="r", shape=(n,))
    dims = records["dim"]
    bad = np.flatnonzero(dims != d)
    if bad.size:
        i = int(bad[0])
        raise FormatError(f"{src}: record {i} has dimension {int(dims[i])}, but record 0 has {d}")
    return records["values"]


def _texmex_reader(suffix: str) -> Callable[[str], _Read]:
    value_dtype = _TEXMEX_DTYPES[suffix]

    def read(src: str) -> _Read:
        return _read_texmex(src, value_dtype), None, None

    return read


def _read_hdf5(src: str, dataset: str = "train") -> _Read:
    return _hdf5_dataset(src, dataset), None, None


def _hdf5_dataset(src: str, name: str) -> np.ndarray:
    """Dataset ``name`` of an HDF5 file, read whole; a missing one lists those present."""
    try:
        import h5py
    except ImportError:
        raise InputError(
            f"{src}: reading .hdf5 needs h5py: pip install 'glint-vector[hdf5]'"
        ) from None
    try:
        f = h5py.File(src, "r")
    except OSError as exc:
        raise FormatError(f"{src}: not a readable HDF5 file: {one_line(exc)}") from None
    with f:
        node = f.get(name)
        if not isinstance(node, h5py.Dataset):
            found: list[str] = []

            def collect(path: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    found.append(path)

            f.visititems(collect)
            problem = (
                f"no {name!r} dataset" if node is None else f"{name!r} is a group, not a dataset"
            )
            raise InputError(f"{src}: {problem}; datasets present: {', '.join(found) or '(none)'}")
        try:
            data = node[()]
        except (OSError, ValueError, TypeError) as exc:
            raise FormatError(f"{src}: cannot read dataset {name!r}: {one_line(exc)}") from None
    return np.asarray(data)


_VECTOR_READERS: dict[str, Callable[[str], _Read]] = {
    ".npy": _read_npy,
    ".fvecs": _texmex_reader(".fvecs"),
    ".bvecs": _texmex_reader(".bvecs"),
    ".ivecs": _texmex_reader(".ivecs"),
    ".hdf5": _read_hdf5,
    ".h5": _read_hdf5,
    ".parquet": read_parquet,
}
