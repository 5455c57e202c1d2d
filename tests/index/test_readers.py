"""Tests for glint.index.readers: every input format round-trips, bad inputs fail clearly."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glint.index import validate
from glint.index.errors import (
    ConfigError,
    DimensionError,
    FormatError,
    InputError,
    NotFoundError,
)
from glint.index.readers import (
    ParquetColumns,
    VectorData,
    read_ground_truth,
    read_ids,
    read_ivecs,
    read_payloads,
    read_vectors,
)
from glint.index.validate import check_ids, check_vectors

RNG = np.random.default_rng(7)


def _vectors(n: int = 6, d: int = 4) -> np.ndarray:
    return RNG.standard_normal((n, d)).astype(np.float32)


def _at(path: Path, pattern: str) -> str:
    """A regex requiring the message to start with ``path: `` and then contain ``pattern``."""
    return f"^{re.escape(str(path))}: .*{pattern}"


def write_texmex(path: Path, x: np.ndarray, dtype: str) -> Path:
    """Write ``x`` as TEXMEX records: int32 dim followed by the row's values in ``dtype``."""
    n, d = x.shape
    record = np.dtype([("dim", "<i4"), ("values", dtype, (d,))])
    out = np.empty(n, dtype=record)
    out["dim"] = d
    out["values"] = x
    out.tofile(path)
    return path


# --------------------------------------------------------------------------------------------
# check_vectors / check_ids


def test_check_vectors_keeps_float32_contiguous_without_copy() -> None:
    x = _vectors()
    out = check_vectors(x)
    assert out is x or np.shares_memory(out, x)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint8, np.int64])
def test_check_vectors_converts_numeric_dtypes(dtype: type) -> None:
    x = np.arange(12).reshape(3, 4).astype(dtype)
    out = check_vectors(x)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.arange(12, dtype=np.float32).reshape(3, 4))


def test_check_vectors_makes_fortran_order_contiguous() -> None:
    x = np.asfortranarray(_vectors())
    out = check_vectors(x)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)


def test_check_vectors_rejects_1d_naming_shape() -> None:
    with pytest.raises(InputError, match=r"queries: .*1-D array of shape \(4,\)"):
        check_vectors(np.zeros(4, np.float32), what="queries")


def test_check_vectors_rejects_non_numeric() -> None:
    with pytest.raises(InputError, match="expected numbers"):
        check_vectors(np.array([["a", "b"]]))
    with pytest.raises(InputError, match="expected numbers"):
        check_vectors(np.ones((2, 2), dtype=bool))


@pytest.mark.parametrize("shape", [(0, 4), (3, 0)])
def test_check_vectors_rejects_empty(shape: tuple[int, int]) -> None:
    with pytest.raises(InputError, match=r"empty, shape"):
        check_vectors(np.zeros(shape, np.float32))


def test_check_vectors_dimension_mismatch_names_both() -> None:
    with pytest.raises(DimensionError, match="expected dimension 8, got 4"):
        check_vectors(_vectors(), dim=8)
    assert check_vectors(_vectors(), dim=4).shape == (6, 4)


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_check_vectors_rejects_non_finite_naming_row_and_column(bad: float, shown: str) -> None:
    x = _vectors(5, 3)
    x[3, 2] = bad
    with pytest.raises(InputError, match=rf"row 3, column 2 is {shown}"):
        check_vectors(x)


def test_check_vectors_non_finite_found_in_later_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "_CHUNK_ELEMENTS", 8)  # 2 rows of d=4 per chunk
    x = _vectors(9, 4).astype(np.float64)
    x[7, 1] = np.nan
    x[8, 0] = np.inf
    with pytest.raises(InputError, match=r"row 7, column 1 is nan"):
        check_vectors(x)
    x[7, 1] = 0.0
    with pytest.raises(InputError, match=r"row 8, column 0 is inf"):
        check_vectors(x)


def test_check_vectors_float64_overflowing_float32() -> None:
    x = np.zeros((2, 2))
    x[1, 0] = 1e300
    with pytest.raises(InputError, match=r"row 1, column 0: value 1e\+300 overflows float32"):
        check_vectors(x)


def test_check_ids_ok_returns_int64() -> None:
    out = check_ids(np.array([5, 0, 9], dtype=np.int32), 3)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [5, 0, 9])


def test_check_ids_count_mismatch_names_both_numbers() -> None:
    with pytest.raises(InputError, match=r"expected 4 ids .*got 3"):
        check_ids(np.arange(3), 4)


def test_check_ids_duplicate_names_value_and_rows() -> None:
    ids = np.array([10, 11, 12, 11, 10, 11])
    # 11 repeats first (row 3); 10's repeat comes later (row 4).
    with pytest.raises(InputError, match=r"duplicate id 11 at rows 1 and 3"):
        check_ids(ids, 6)


@pytest.mark.parametrize(
    ("ids", "pattern"),
    [
        (np.array([1.0, 2.0]), "expected integers"),
        (np.array([[1, 2]]), r"expected a 1-D array, got shape \(1, 2\)"),
        (np.array([2**63], dtype=np.uint64), "does not fit in int64"),
    ],
)
def test_check_ids_rejects_bad_arrays(ids: np.ndarray, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        check_ids(ids, ids.shape[-1])


# --------------------------------------------------------------------------------------------
# path handling


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.fvecs"
    with pytest.raises(NotFoundError, match=_at(path, "no such file")):
        read_vectors(path)
    with pytest.raises(FileNotFoundError):
        read_ids(path.with_suffix(".npy"), 3)


def test_unknown_suffix_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "base.xyz"
    path.write_bytes(b"1234")
    with pytest.raises(
        InputError, match=_at(path, r"unsupported suffix '\.xyz'.*\.fvecs.*\.parquet")
    ):
        read_vectors(path)


def test_directory_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dir.npy"
    path.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        read_vectors(path)


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    x = _vectors()
    path = write_texmex(tmp_path / "BASE.FVECS", x, "<f4")
    np.testing.assert_array_equal(read_vectors(path).vectors, x)


# --------------------------------------------------------------------------------------------
# .npy


def test_npy_round_trip(tmp_path: Path) -> None:
    x = _vectors()
    path = tmp_path / "base.npy"
    np.save(path, x)
    data = read_vectors(str(path), dim=4)
    assert isinstance(data, VectorData)
    assert data.vectors.dtype == np.float32 and data.vectors.flags.c_contiguous
    np.testing.assert_array_equal(data.vectors, x)
    assert data.ids is None and data.payloads is None


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int16])
def test_npy_other_dtypes_become_float32(tmp_path: Path, dtype: type) -> None:
    x = np.arange(20).reshape(5, 4).astype(dtype)
    path = tmp_path / "base.npy"
    np.save(path, x)
    out = read_vectors(path).vectors
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))


def test_npy_truncated(tmp_path: Path) -> None:
    path = tmp_path / "base.npy"
    np.save(path, _vectors(100, 8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(FormatError, match=_at(path, "not a readable .npy file")):
        read_vectors(path)


def test_npy_garbage(tmp_path: Path) -> None:
    path = tmp_path / "base.npy"
    path.write_bytes(b"definitely not numpy" * 10)
    with pytest.raises(FormatError, match=_at(path, "not a readable .npy file")):
        read_vectors(path)


def test_npy_empty_array_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "base.npy"
    np.save(path, np.zeros((0, 4), np.float32))
    with pytest.raises(InputError, match=_at(path, "empty")):
        read_vectors(path)
    path.write_bytes(b"")
    with pytest.raises(InputError, match=_at(path, r"empty file \(0 bytes\)")):
        read_vectors(path)


def test_npy_nan_inf_and_dim(tmp_path: Path) -> None:
    path = tmp_path / "base.npy"
    x = _vectors()
    x[2, 1] = np.nan
    np.save(path, x)
    with pytest.raises(InputError, match=_at(path, "vectors: row 2, column 1 is nan")):
        read_vectors(path)
    x[2, 1] = 0
    x[4, 3] = np.inf
    np.save(path, x)
    with pytest.raises(InputError, match=_at(path, "queries: row 4, column 3 is inf")):
        read_vectors(path, what="queries")
    x[4, 3] = 0
    np.save(path, x)
    with pytest.raises(DimensionError, match=_at(path, "expected dimension 5, got 4")):
        read_vectors(path, dim=5)


def test_npy_1d_rejected(tmp_path: Path) -> None:
    path = tmp_path / "base.npy"
    np.save(path, np.ones(4, np.float32))
    with pytest.raises(InputError, match=_at(path, r"1-D array of shape \(4,\)")):
        read_vectors(path)


# --------------------------------------------------------------------------------------------
# TEXMEX


@pytest.mark.parametrize(
    ("suffix", "dtype", "x"),
    [
        (".fvecs", "<f4", _vectors(7, 5)),
        (".bvecs", "u1", RNG.integers(0, 256, (7, 5)).astype(np.uint8)),
        (".ivecs", "<i4", RNG.integers(-1000, 1000, (7, 5)).astype(np.int32)),
    ],
)
def test_texmex_round_trip(tmp_path: Path, suffix: str, dtype: str, x: np.ndarray) -> None:
    path = write_texmex(tmp_path / f"base{suffix}", x, dtype)
    data = read_vectors(path, dim=5)
    assert data.vectors.dtype == np.float32 and data.vectors.flags.c_contiguous
    assert data.vectors.shape == (7, 5)
    np.testing.assert_array_equal(data.vectors, x.astype(np.float32))
    assert data.ids is None and data.payloads is None


def test_read_ivecs_keeps_int32(tmp_path: Path) -> None:
    gt = RNG.integers(0, 10**6, (4, 10)).astype(np.int32)
    path = write_texmex(tmp_path / "gt.ivecs", gt, "<i4")
    out = read_ivecs(path)
    assert out.dtype == np.int32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, gt)


@pytest.mark.parametrize(("suffix", "dtype"), [(".fvecs", "<f4"), (".bvecs", "u1")])
def test_texmex_truncated(tmp_path: Path, suffix: str, dtype: str) -> None:
    path = write_texmex(tmp_path / f"base{suffix}", np.ones((3, 4)), dtype)
    path.write_bytes(path.read_bytes()[:-1])
    record = 4 + 4 * np.dtype(dtype).itemsize
    size = 3 * record - 1
    pattern = rf"truncated: {size} bytes is not a multiple of the record size {record} \(dim 4\)"
    with pytest.raises(FormatError, match=_at(path, pattern)):
        read_vectors(path)


def test_fvecs_inconsistent_record_dims(tmp_path: Path) -> None:
    # Records of dim 2, 2, 2 then one record claiming dim 5 (same byte length as dim 2 x 1).
    path = tmp_path / "base.fvecs"
    raw = np.array([2, 0, 0] * 3 + [5, 0, 0] + [2, 0, 0], dtype="<i4")
    raw.tofile(path)
    with pytest.raises(
        FormatError, match=_at(path, "record 3 has dimension 5, but record 0 has 2")
    ):
        read_vectors(path)


def test_fvecs_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "base.fvecs"
    np.array([0, 0], dtype="<i4").tofile(path)
    with pytest.raises(FormatError, match=_at(path, "record 0 has dimension 0")):
        read_vectors(path)


def test_texmex_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "base.fvecs"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=_at(path, "empty file")):
        read_vectors(path)
    gt = tmp_path / "gt.ivecs"
    gt.write_bytes(b"")
    with pytest.raises(InputError, match=_at(gt, "empty file")):
        read_ivecs(gt)


def test_fvecs_nan_inf_and_dim(tmp_path: Path) -> None:
    x = _vectors(5, 3)
    x[4, 0] = np.nan
    path = write_texmex(tmp_path / "base.fvecs", x, "<f4")
    with pytest.raises(InputError, match=_at(path, "row 4, column 0 is nan")):
        read_vectors(path)
    x[4, 0] = 0
    x[1, 2] = -np.inf
    write_texmex(path, x, "<f4")
    with pytest.raises(InputError, match=_at(path, "row 1, column 2 is -inf")):
        read_vectors(path)
    x[1, 2] = 0
    write_texmex(path, x, "<f4")
    with pytest.raises(DimensionError, match=_at(path, "expected dimension 4, got 3")):
        read_vectors(path, dim=4)


# --------------------------------------------------------------------------------------------
# HDF5


@pytest.mark.parametrize("suffix", [".hdf5", ".h5"])
def test_hdf5_round_trip(tmp_path: Path, suffix: str) -> None:
    x = _vectors(8, 3)
    path = tmp_path / f"ann{suffix}"
    with h5py.File(path, "w") as f:
        f["train"] = x.astype(np.float64)
        f["test"] = x[:2]
    data = read_vectors(path, dim=3)
    assert data.vectors.dtype == np.float32 and data.vectors.flags.c_contiguous
    np.testing.assert_array_equal(data.vectors, x)
    assert data.ids is None and data.payloads is None


def test_hdf5_dataset_test_reads_the_queries(tmp_path: Path) -> None:
    x, q = _vectors(8, 3), _vectors(2, 3)
    path = tmp_path / "ann.hdf5"
    with h5py.File(path, "w") as f:
        f["train"], f["test"] = x, q
    np.testing.assert_array_equal(read_vectors(path, dataset="test", what="queries").vectors, q)
    np.testing.assert_array_equal(read_vectors(path).vectors, x)  # train by default
    with h5py.File(path, "w") as f:
        f["train"] = x
    with pytest.raises(InputError, match=_at(path, "no 'test' dataset; datasets present: train")):
        read_vectors(path, dataset="test")


def test_hdf5_missing_train_lists_datasets(tmp_path: Path) -> None:
    path = tmp_path / "ann.hdf5"
    with h5py.File(path, "w") as f:
        f["test"] = _vectors(2, 3)
        f["neighbors"] = np.zeros((2, 1), np.int32)
    with pytest.raises(InputError, match=_at(path, "no 'train' dataset; datasets present: ")):
        read_vectors(path)
    with pytest.raises(InputError, match="neighbors, test"):
        read_vectors(path)


def test_hdf5_empty_train_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "ann.hdf5"
    with h5py.File(path, "w") as f:
        f["train"] = np.zeros((0, 3), np.float32)
    with pytest.raises(InputError, match=_at(path, "empty")):
        read_vectors(path)
    x = _vectors(4, 3)
    x[3, 1] = np.nan
    with h5py.File(path, "w") as f:
        f["train"] = x
    with pytest.raises(InputError, match=_at(path, "row 3, column 1 is nan")):
        read_vectors(path)


def test_hdf5_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ann.hdf5"
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(FormatError, match=_at(path, "not a readable HDF5 file")):
        read_vectors(path)


def test_hdf5_without_h5py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ann.hdf5"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(InputError, match=r"needs h5py: pip install 'glint-vector\[hdf5\]'"):
        read_vectors(path)


# --------------------------------------------------------------------------------------------
# parquet


def _rag_table(n: int) -> pa.Table:
    return pa.table(
        {
            "embedding": pa.array(
                np.arange(n * 2, dtype=np.float32).reshape(n, 2).tolist(), pa.list_(pa.float32())
            ),
            "doc_id": pa.array(np.arange(n) * 10 + 3, pa.int64()),
            "text": [f"t{i}" for i in range(n)],
            "title": [f"h{i}" for i in range(n)],
        }
    )


def test_parquet_columns_choose_vectors_ids_and_payloads(tmp_path: Path) -> None:
    path = tmp_path / "rag.parquet"
    pq.write_table(_rag_table(5), path)
    columns = ParquetColumns(vector_column="embedding", id_column="doc_id")
    data = read_vectors(path, columns=columns)
    np.testing.assert_array_equal(data.vectors, np.arange(10, dtype=np.float32).reshape(5, 2))
    np.testing.assert_array_equal(data.ids, [3, 13, 23, 33, 43])
    assert data.payloads is not None and data.payloads[4] == {"text": "t4", "title": "h4"}
    only_text = ParquetColumns(vector_column="embedding", payload_columns=["text"], id_column="")
    data = read_vectors(path, columns=only_text)
    assert data.ids is None and data.payloads == [{"text": f"t{i}"} for i in range(5)]
    data = read_vectors(path, columns=ParquetColumns(vector_column="embedding", payload_columns=()))
    assert data.payloads is None
    assert data.ids is None  # no column named id, none chosen


def test_parquet_is_read_in_batches_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rag.parquet"
    pq.write_table(_rag_table(100), path, row_group_size=30)

    def whole_table(*_: object, **__: object) -> None:
        raise AssertionError("read the whole table at once")

    monkeypatch.setattr(pq, "read_table", whole_table)
    monkeypatch.setattr(pq.ParquetFile, "read", whole_table)
    columns = ParquetColumns(vector_column="embedding", id_column="doc_id", batch_size=7)
    data = read_vectors(path, columns=columns)
    assert data.vectors.dtype == np.float32 and data.vectors.flags.c_contiguous
    np.testing.assert_array_equal(data.vectors, np.arange(200, dtype=np.float32).reshape(100, 2))
    np.testing.assert_array_equal(data.ids, np.arange(100) * 10 + 3)
    assert data.payloads == [{"text": f"t{i}", "title": f"h{i}"} for i in range(100)]


@pytest.mark.parametrize(
    ("row", "change", "pattern"),
    [
        (61, {"vector": None}, "row 61: column 'vector' is null"),
        (62, {"vector": [1.0]}, "row 62: 'vector' has 1 values, but row 0 has 2"),
        (63, {"vector": [1.0, None]}, "row 63, column 1: 'vector' element is null"),
        (64, {"vector": [0.0, np.inf]}, "row 64, column 1 is inf in 'vector'"),
        (65, {"vector": [1e300, 0.0]}, r"row 65, column 0: value 1e\+300 in 'vector' overflows"),
        (66, {"id": None}, "row 66: column 'id' is null"),
        (67, {"id": 3}, "duplicate id 3 at rows 3 and 67"),
    ],
)
def test_parquet_errors_in_a_later_batch_name_the_file_row(
    tmp_path: Path, row: int, change: dict, pattern: str
) -> None:
    rows = [{"vector": [float(i), 1.0], "id": i} for i in range(80)]
    rows[row].update(change)
    path = tmp_path / "docs.parquet"
    vector_type = pa.list_(pa.float64())
    pq.write_table(
        pa.Table.from_pylist(rows, pa.schema([("vector", vector_type), ("id", pa.int64())])),
        path,
        row_group_size=16,
    )
    with pytest.raises(InputError, match=_at(path, pattern)):
        read_vectors(path, columns=ParquetColumns(batch_size=5))


def test_parquet_columns_errors(tmp_path: Path) -> None:
    path = tmp_path / "rag.parquet"
    pq.write_table(_rag_table(3), path)
    present = "columns present: embedding, doc_id, text, title"
    for columns in (
        ParquetColumns(vector_column="vec"),
        ParquetColumns(vector_column="embedding", id_column="id"),
        ParquetColumns(vector_column="embedding", payload_columns=["text", "body"]),
    ):
        with pytest.raises(InputError, match=_at(path, f"no '.*' column; {present}$")):
            read_vectors(path, columns=columns)
    with pytest.raises(
        InputError, match=_at(path, "column 'text' has type string, expected integers")
    ):
        read_vectors(path, columns=ParquetColumns(vector_column="embedding", id_column="text"))
    with pytest.raises(
        InputError, match=_at(path, "column 'text' has type string, expected a list")
    ):
        read_vectors(path, columns=ParquetColumns(vector_column="text"))
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        ParquetColumns(batch_size=0)
    npy = tmp_path / "x.npy"
    np.save(npy, _vectors())
    with pytest.raises(InputError, match=_at(npy, "columns can be chosen in .parquet only")):
        read_vectors(npy, columns=ParquetColumns())


def test_parquet_round_trip_with_ids_and_payloads(tmp_path: Path) -> None:
    x = _vectors(3, 4)
    when = dt.datetime(2024, 5, 1, 12, 30)
    table = pa.table(
        {
            "id": pa.array([30, 10, 20], pa.int32()),
            "vector": pa.array(x.tolist(), pa.list_(pa.float32())),
            "title": ["a", None, "c"],
            "score": [1.5, 2.0, None],
            "tags": [["x", "y"], [], None],
            "meta": [{"k": 1}, {"k": 2}, None],
            "when": pa.array([when, None, when], pa.timestamp("us")),
        }
    )
    path = tmp_path / "docs.parquet"
    pq.write_table(table, path)
    data = read_vectors(path, dim=4)
    np.testing.assert_array_equal(data.vectors, x)
    assert data.vectors.dtype == np.float32 and data.vectors.flags.c_contiguous
    assert data.ids is not None and data.ids.dtype == np.int64
    np.testing.assert_array_equal(data.ids, [30, 10, 20])
    assert data.payloads == [
        {
            "title": "a",
            "score": 1.5,
            "tags": ["x", "y"],
            "meta": {"k": 1},
            "when": "2024-05-01T12:30:00",
        },
        {"title": None, "score": 2.0, "tags": [], "meta": {"k": 2}, "when": None},
        {"title": "c", "score": None, "tags": None, "meta": None, "when": "2024-05-01T12:30:00"},
    ]
    json.dumps(data.payloads)  # plain python values only


def test_parquet_fixed_size_list_without_ids_or_payloads(tmp_path: Path) -> None:
    x = _vectors(5, 2).astype(np.float64)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"vector": vectors}), path)
    data = read_vectors(path)
    np.testing.assert_array_equal(data.vectors, x.astype(np.float32))
    assert data.ids is None and data.payloads is None


def test_parquet_multiple_row_groups(tmp_path: Path) -> None:
    x = _vectors(10, 3)
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"vector": x.tolist(), "id": np.arange(10)}), path, row_group_size=3)
    data = read_vectors(path)
    np.testing.assert_array_equal(data.vectors, x)
    np.testing.assert_array_equal(data.ids, np.arange(10))


def test_parquet_ragged_vectors(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"vector": [[1.0, 2.0], [3.0, 4.0], [5.0]]}), path)
    with pytest.raises(
        InputError, match=_at(path, "row 2: 'vector' has 1 values, but row 0 has 2")
    ):
        read_vectors(path)


def test_parquet_duplicate_id(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"vector": [[1.0], [2.0], [3.0]], "id": [4, 5, 4]}), path)
    with pytest.raises(InputError, match=_at(path, "duplicate id 4 at rows 0 and 2")):
        read_vectors(path)


def test_parquet_null_vector_and_null_element(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"vector": [[1.0, 2.0], None]}), path)
    with pytest.raises(InputError, match=_at(path, "row 1: column 'vector' is null")):
        read_vectors(path)
    pq.write_table(pa.table({"vector": [[1.0, 2.0], [3.0, None]]}), path)
    with pytest.raises(InputError, match=_at(path, "row 1, column 1: 'vector' element is null")):
        read_vectors(path)


@pytest.mark.parametrize(
    ("columns", "exc", "pattern"),
    [
        ({"emb": [[1.0]]}, InputError, "no 'vector' column; columns present: emb"),
        ({"vector": ["a"]}, InputError, "column 'vector' has type string"),
        ({"vector": [[1.0]], "id": [1.5]}, InputError, "column 'id' has type double"),
        ({"vector": [[1.0], [2.0]], "id": [1, None]}, InputError, "row 1: column 'id' is null"),
        ({"vector": [[1.0]], "blob": [b"\x00"]}, InputError, "column 'blob' has type binary"),
        ({"vector": pa.array([], pa.list_(pa.float32()))}, InputError, "empty"),
        ({"vector": [[np.nan]]}, InputError, "row 0, column 0 is nan"),
    ],
)
def test_parquet_rejects(tmp_path: Path, columns: dict, exc: type, pattern: str) -> None:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(exc, match=_at(path, pattern)):
        read_vectors(path)


def test_parquet_dim_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"vector": [[1.0, 2.0]]}), path)
    with pytest.raises(DimensionError, match=_at(path, "expected dimension 3, got 2")):
        read_vectors(path, dim=3)


def test_parquet_corrupt_and_without_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "docs.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(FormatError, match=_at(path, "not a readable parquet file")):
        read_vectors(path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match=r"needs pyarrow: pip install 'glint-vector\[parquet\]'"):
        read_vectors(path)


# --------------------------------------------------------------------------------------------
# ground truth


def test_read_ground_truth_formats(tmp_path: Path) -> None:
    truth = RNG.integers(0, 1000, (4, 6)).astype(np.int32)
    np.save(tmp_path / "gt.npy", truth)
    write_texmex(tmp_path / "gt.ivecs", truth, "<i4")
    with h5py.File(tmp_path / "ann.hdf5", "w") as f:
        f["train"], f["neighbors"] = _vectors(), truth
    for name in ("gt.npy", "gt.ivecs", "ann.hdf5"):
        out = read_ground_truth(tmp_path / name)
        assert out.dtype == np.int64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, truth)


def test_read_ground_truth_rejects(tmp_path: Path) -> None:
    path = tmp_path / "gt.npy"
    np.save(path, np.zeros((4, 6), np.float32))
    with pytest.raises(
        InputError, match=_at(path, "2-D array of integer ids .* got shape \\(4, 6\\) of float32")
    ):
        read_ground_truth(path)
    np.save(path, np.zeros(4, np.int64))
    with pytest.raises(InputError, match=_at(path, "got shape \\(4,\\) of int64")):
        read_ground_truth(path)
    h5 = tmp_path / "ann.hdf5"
    with h5py.File(h5, "w") as f:
        f["train"] = _vectors()
    with pytest.raises(
        InputError, match=_at(h5, "no 'neighbors' dataset; datasets present: train")
    ):
        read_ground_truth(h5)
    txt = tmp_path / "gt.txt"
    txt.write_text("1\n")
    with pytest.raises(InputError, match=_at(txt, "unsupported suffix '\\.txt' for ground truth")):
        read_ground_truth(txt)


# --------------------------------------------------------------------------------------------
# ids


def test_read_ids_npy_and_text(tmp_path: Path) -> None:
    npy = tmp_path / "ids.npy"
    np.save(npy, np.array([7, 3, 9], dtype=np.int32))
    out = read_ids(npy, 3)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [7, 3, 9])
    for name in ("ids.txt", "ids.CSV"):
        text = tmp_path / name
        text.write_text(" 7\n3 \r\n9\n\n")
        np.testing.assert_array_equal(read_ids(text, 3), [7, 3, 9])


def test_read_ids_count_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("1\n2\n3\n")
    with pytest.raises(InputError, match=_at(path, r"expected 4 ids \(one per row\), got 3")):
        read_ids(path, 4)
    npy = tmp_path / "ids.npy"
    np.save(npy, np.arange(5))
    with pytest.raises(InputError, match=_at(npy, "expected 4 ids .*got 5")):
        read_ids(npy, 4)


def test_read_ids_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("1\n2\n3\n2\n")
    with pytest.raises(InputError, match=_at(path, "duplicate id 2 at rows 1 and 3")):
        read_ids(path, 4)


def test_read_ids_bad_text_and_dtype(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("1\n2\nthree\n")
    with pytest.raises(
        FormatError, match=_at(path, r"line 3 \(row 2\) is not an integer: 'three'")
    ):
        read_ids(path, 3)
    path.write_text("1\n\n3\n")
    with pytest.raises(FormatError, match=_at(path, "line 2 .* is not an integer: ''")):
        read_ids(path, 3)
    npy = tmp_path / "ids.npy"
    np.save(npy, np.array([1.0, 2.0]))
    with pytest.raises(InputError, match=_at(npy, "expected integers, got dtype float64")):
        read_ids(npy, 2)


def test_read_ids_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    path.write_text("[1]")
    with pytest.raises(InputError, match=_at(path, r"unsupported suffix '\.json' for ids")):
        read_ids(path, 1)


# --------------------------------------------------------------------------------------------
# payloads


def test_read_payloads_round_trip(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": [1, 2]}, None, {"nested": {"x": "y"}}]
    path = tmp_path / "payloads.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_payloads(path, 3) == rows


def test_read_payloads_count_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "payloads.jsonl"
    path.write_text('{"a": 1}\nnull\n')
    with pytest.raises(InputError, match=_at(path, r"expected 3 payload lines .*got 2")):
        read_payloads(path, 3)


@pytest.mark.parametrize(
    ("text", "exc", "pattern"),
    [
        ('{"a": 1}\n{"a": \n', FormatError, r"line 2 \(row 1\) is not valid JSON"),
        ('{"a": 1}\n[1, 2]\n', InputError, r"line 2 \(row 1\) is a JSON list, expected an object"),
        ('{"a": 1}\n\n{"a": 2}\n', InputError, r"line 2 \(row 1\) is blank; write null"),
    ],
)
def test_read_payloads_bad_lines(tmp_path: Path, text: str, exc: type, pattern: str) -> None:
    path = tmp_path / "payloads.jsonl"
    path.write_text(text)
    with pytest.raises(exc, match=_at(path, pattern)):
        read_payloads(path, 3)


def test_messages_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "base.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00garbage\n" * 4)
    with pytest.raises(FormatError) as info:
        read_vectors(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


def test_negative_ids_are_refused() -> None:
    from glint.index.validate import check_ids

    with pytest.raises(InputError, match=r"row 2: id -1 is negative"):
        check_ids(np.array([0, 1, -1, 3]), 4)
