"""Input that people really have: ann-benchmarks ``.hdf5`` files with their ground truth, parquet
from RAG pipelines, ``glint build --check-recall``, and the warning for an omitted ``--metric``.

The command runs in process (``glint.service.cli.main``) except for the acceptance path, which
runs the installed ``glint`` as a user does.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glint.index import load_index
from glint.index.groundtruth import exact_knn, recall_at_k, sample_queries
from glint.index.multivec import TokenSets
from glint.service.cli import main

from testkit import brute_force, clustered, run_glint, token_sets

NQ, N, DIM = 100, 2000, 32


def glint(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[dict, list[str]]:
    """Run ``glint ARGS`` in process; it must succeed. Its JSON line and its stderr lines."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err.splitlines()


def glint_fails(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """Run ``glint ARGS`` in process; it must fail with one line on stderr, which is returned."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def independent_recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Recall@k the plain way: one set intersection per query."""
    hits = sum(len(set(f[:k]) & set(t[:k]) - {-1}) for f, t in zip(found, truth, strict=True))
    return hits / (len(found) * k)


@pytest.fixture(scope="module")
def ann(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A glove-like ann-benchmarks file (angular: ``cos``), its ground truth also as .ivecs and
    .npy, and flat and hnsw indexes built from it."""
    d = tmp_path_factory.mktemp("ann")
    train, test = clustered(N, DIM, seed=1), clustered(NQ, DIM, seed=2)
    neighbors = brute_force(test, train, 100, "cos")  # float64 numpy, independent of glint
    with h5py.File(d / "glove-like.hdf5", "w") as f:
        f["train"], f["test"] = train, test
        f["neighbors"] = neighbors.astype(np.int32)
        f["distances"] = np.zeros((NQ, 100), np.float32)  # unused by glint
    np.save(d / "gt.npy", neighbors)
    ivecs = np.empty(NQ, [("dim", "<i4"), ("values", "<i4", (100,))])
    ivecs["dim"], ivecs["values"] = 100, neighbors
    ivecs.tofile(d / "gt.ivecs")
    np.save(d / "train.npy", train)
    for name, spec in [("flat", "flat:storage=f32"), ("hnsw", "hnsw:m=8")]:
        run_glint(
            "build", d / "glove-like.hdf5", "--index", spec, "--metric", "cos", "--out", d / name
        )
    return {
        "hdf5": d / "glove-like.hdf5",
        "npy": d / "gt.npy",
        "ivecs": d / "gt.ivecs",
        "train": d / "train.npy",
        "flat": d / "flat",
        "hnsw": d / "hnsw",
        "dir": d,
    }


# -- ann-benchmarks .hdf5 and --gt ---------------------------------------------------------------


def test_search_hdf5_reads_test_and_flat_recall_is_exact(ann: dict[str, Path]) -> None:
    """The acceptance path, as a user runs it: the recall an exact search confirms."""
    out = ann["dir"] / "flat.npz"
    proc = run_glint(
        "search", ann["flat"], "--queries", ann["hdf5"], "--gt", "--k", "10", "--out", out
    )
    line = json.loads(proc.stdout)
    assert load_index(ann["flat"]).count == N  # the build read train
    assert line["queries"] == NQ  # test, not train
    assert line["recall_at"] == 10 and line["recall"] == 1.0
    found = np.load(out)["ids"]
    assert independent_recall(found, np.load(ann["npy"]), 10) == 1.0


@pytest.mark.parametrize("gt", ["", "ivecs", "npy"])
def test_hnsw_recall_matches_an_independent_count(
    ann: dict[str, Path], gt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ann["dir"] / f"hnsw-{gt}.npz"
    gt_args = ["--gt", ann[gt]] if gt else ["--gt"]
    args = ["--queries", ann["hdf5"], "--k", "10", "--param", "ef_search=10", "--out", out]
    line, err = glint(capsys, "search", ann["hnsw"], *args, *gt_args)
    assert err == []
    expected = independent_recall(np.load(out)["ids"], np.load(ann["npy"]), 10)
    assert 0.3 < expected < 1.0  # low ef_search: a recall worth checking
    assert line["recall"] == expected and line["recall_at"] == 10


def test_gt_at_smaller_k_uses_the_first_columns(
    ann: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = ann["dir"] / "k3.npz"
    args = ["--queries", ann["hdf5"], "--gt", ann["npy"], "--k", "3", "--out", out]
    line, _ = glint(capsys, "search", ann["hnsw"], *args, "--param", "ef_search=4")
    assert line["recall_at"] == 3
    assert line["recall"] == independent_recall(np.load(out)["ids"], np.load(ann["npy"]), 3)


def test_gt_that_does_not_fit_is_a_one_line_error(
    ann: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    d, out = ann["dir"], ann["dir"] / "bad.npz"
    search = ["search", ann["flat"], "--queries", ann["hdf5"], "--out", out]
    np.save(d / "short.npy", np.load(ann["npy"])[:99])
    line = glint_fails(capsys, *search, "--k", "10", "--gt", d / "short.npy")
    assert line == (
        f"glint: error: {d / 'short.npy'}: ground truth has shape (99, 100), but the search "
        "has 100 queries at k=10: need 100 rows of at least 10 neighbours"
    )
    line = glint_fails(capsys, *search, "--k", "101", "--gt")
    assert "ground truth has shape (100, 100), but the search has 100 queries at k=101" in line
    np.save(d / "floats.npy", np.zeros((NQ, 10), np.float32))
    line = glint_fails(capsys, *search, "--k", "10", "--gt", d / "floats.npy")
    assert "ground truth must be a 2-D array of integer ids" in line
    line = glint_fails(
        capsys, "search", ann["flat"], "--queries", ann["train"], "--k", "1", "--out", out, "--gt"
    )
    assert "--gt without a file reads the 'neighbors' of an .hdf5 --queries file" in line
    with h5py.File(d / "no-gt.hdf5", "w") as f:
        f["train"] = f["test"] = clustered(NQ, DIM, seed=2)
    line = glint_fails(
        capsys,
        "search",
        ann["flat"],
        "--queries",
        d / "no-gt.hdf5",
        "--k",
        "1",
        "--out",
        out,
        "--gt",
    )
    assert line.endswith("no 'neighbors' dataset; datasets present: test, train")
    assert not out.exists()  # refused before the search


def test_search_hdf5_without_test_lists_datasets(
    ann: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = ann["dir"] / "train-only.hdf5"
    with h5py.File(path, "w") as f:
        f["train"] = clustered(10, DIM)
    line = glint_fails(
        capsys, "search", ann["flat"], "--queries", path, "--k", "1", "--out", ann["dir"] / "x.npz"
    )
    assert line == f"glint: error: {path}: no 'test' dataset; datasets present: train"


# -- parquet -------------------------------------------------------------------------------------


def test_parquet_builds_with_the_column_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The acceptance path: ``embedding`` (list<float32>), integer ``doc_id`` and ``text``."""
    x = clustered(300, 16, seed=4)
    doc_ids = np.arange(300, dtype=np.int64) * 7 + 1000
    table = pa.table(
        {
            "embedding": pa.array(x.tolist(), pa.list_(pa.float32())),
            "doc_id": doc_ids,
            "text": [f"passage {i}" for i in range(300)],
            "title": [f"title {i}" for i in range(300)],
        }
    )
    path = tmp_path / "rag.parquet"
    pq.write_table(table, path, row_group_size=64)
    flags = ["--vector-column", "embedding", "--id-column", "doc_id"]
    line, _ = glint(
        capsys, "build", path, *flags, "--payload-columns", "text", "--metric", "cos",
        "--out", tmp_path / "ix",
    )  # fmt: skip
    assert line["count"] == 300 and line["dim"] == 16
    index = load_index(tmp_path / "ix")
    hits = index.search(x[[5, 299]], 1)
    np.testing.assert_array_equal(hits.ids[:, 0], doc_ids[[5, 299]])
    assert index.payloads(hits.ids[:, 0]) == {
        1035: {"text": "passage 5"},
        3093: {"text": "passage 299"},
    }
    # without --payload-columns every other column is payload; '' means none
    glint(capsys, "build", path, *flags, "--metric", "cos", "--out", tmp_path / "all")
    assert load_index(tmp_path / "all").payloads([1035]) == {
        1035: {"text": "passage 5", "title": "title 5"}
    }
    glint(
        capsys, "build", path, *flags, "--payload-columns", "", "--metric", "cos",
        "--out", tmp_path / "none",
    )  # fmt: skip
    assert not load_index(tmp_path / "none").has_payloads
    # --ids overrides the id column
    np.save(tmp_path / "ids.npy", np.arange(300) + 5)
    glint(
        capsys, "build", path, *flags, "--ids", tmp_path / "ids.npy", "--metric", "cos",
        "--out", tmp_path / "over",
    )  # fmt: skip
    assert load_index(tmp_path / "over").search(x[5], 1).ids[0, 0] == 10


def test_parquet_column_flag_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rag.parquet"
    table = pa.table({"embedding": [[1.0, 0.0]], "doc_id": ["a"], "text": ["t"]})
    pq.write_table(table, path)
    out = ["--metric", "ip", "--out", tmp_path / "ix"]
    line = glint_fails(capsys, "build", path, *out)
    assert (
        line
        == f"glint: error: {path}: no 'vector' column; columns present: embedding, doc_id, text"
    )
    line = glint_fails(capsys, "build", path, "--vector-column", "emb", *out)
    assert line.endswith("no 'emb' column; columns present: embedding, doc_id, text")
    line = glint_fails(
        capsys, "build", path, "--vector-column", "embedding", "--id-column", "doc_id", *out
    )
    assert line.endswith(
        "column 'doc_id' has type string, expected integers (choose the id column with --id-column, or --id-column '' to number the rows)"
    )
    line = glint_fails(
        capsys,
        "build",
        path,
        "--vector-column",
        "embedding",
        "--payload-columns",
        "text,body",
        *out,
    )
    assert line.endswith("no 'body' column; columns present: embedding, doc_id, text")
    np.save(tmp_path / "x.npy", np.eye(2, dtype=np.float32))
    line = glint_fails(capsys, "build", tmp_path / "x.npy", "--vector-column", "embedding", *out)
    assert line.endswith("vector, id and payload columns can be chosen in .parquet only")
    assert not (tmp_path / "ix").exists()


# -- build --check-recall ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("base")
    np.save(d / "base.npy", clustered(N, DIM, seed=5))
    np.save(d / "ids.npy", np.arange(N, dtype=np.int64)[::-1] * 3 + 11)
    return d


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
def test_check_recall_of_a_flat_index_is_one(
    base: Path, tmp_path: Path, metric: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line, err = glint(
        capsys, "build", base / "base.npy", "--metric", metric, "--check-recall", "50",
        "--out", tmp_path / "ix",
    )  # fmt: skip
    assert line["check_recall"] == {"queries": 50, "k": 10, "recall": 1.0, "params": "defaults"}
    assert err == []


def test_check_recall_of_hnsw(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--index", "hnsw:m=8", "--metric", "l2", "--check-recall", "5000"]
    line, _ = glint(capsys, "build", base / "base.npy", *args, "--out", tmp_path / "ix")
    check = line["check_recall"]
    assert check["queries"] == N and check["k"] == 10  # N capped at the count
    assert 0.5 < check["recall"] <= 1.0
    # the same figure as searching the saved index and counting against brute force
    x = np.load(base / "base.npy")
    found = load_index(tmp_path / "ix").search(x, 10).ids
    assert check["recall"] == independent_recall(found, brute_force(x, x, 10, "l2"), 10)


def test_check_recall_maps_exact_rows_through_the_ids(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--ids", base / "ids.npy", "--metric", "ip", "--check-recall", "40"]
    line, _ = glint(capsys, "build", base / "base.npy", *args, "--out", tmp_path / "flat")
    assert line["check_recall"]["recall"] == 1.0
    line, _ = glint(
        capsys, "build", base / "base.npy", *args, "--index", "hnsw:m=8", "--out", tmp_path / "hnsw"
    )
    assert 0.5 < line["check_recall"]["recall"] <= 1.0


def test_check_recall_with_queries(
    ann: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--queries of an .hdf5 file are its test vectors; the first N are used."""
    args = ["--index", "hnsw:m=8", "--metric", "cos", "--queries", ann["hdf5"]]
    line, _ = glint(
        capsys, "build", ann["hdf5"], *args, "--check-recall", "1000", "--out", tmp_path / "a"
    )
    assert line["check_recall"]["queries"] == NQ
    recall = line["check_recall"]["recall"]
    assert 0.5 < recall <= 1.0
    found = load_index(tmp_path / "a").search(clustered(NQ, DIM, seed=2), 10).ids
    assert recall == independent_recall(found, np.load(ann["npy"]), 10)
    line, _ = glint(
        capsys, "build", ann["hdf5"], *args, "--check-recall", "7", "--out", tmp_path / "b"
    )
    assert line["check_recall"]["queries"] == 7


def test_check_recall_of_muvera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokens, offsets = token_sets(200, 16, seed=6)
    np.savez(tmp_path / "docs.npz", tokens=tokens, offsets=offsets)
    line, err = glint(
        capsys, "build", tmp_path / "docs.npz", "--index", "muvera", "--check-recall", "20",
        "--out", tmp_path / "ix",
    )  # fmt: skip
    assert line["check_recall"]["queries"] == 20 and 0.5 < line["check_recall"]["recall"] <= 1.0
    assert err == []  # unit-length tokens: no --metric warning


def test_check_recall_errors(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--metric", "ip", "--out", tmp_path / "ix"]
    line = glint_fails(capsys, "build", base / "base.npy", "--queries", base / "base.npy", *out)
    assert line == "glint: error: --queries gives the queries of --check-recall N; pass both"
    np.save(tmp_path / "q.npy", np.ones((3, 5), np.float32))
    line = glint_fails(
        capsys,
        "build",
        base / "base.npy",
        "--check-recall",
        "3",
        "--queries",
        tmp_path / "q.npy",
        *out,
    )
    assert line.endswith("queries: expected dimension 32, got 5")
    assert not (tmp_path / "ix").exists()  # refused before the build


# -- the --metric warning ------------------------------------------------------------------------

WARNING = (
    "glint: warning: --metric not given, using ip, but the vectors are not unit length "
    "(norms {} to {} in a sample): pass --metric ip to keep it, cos to normalise, or l2"
)


def test_metric_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.ones((50, 4), np.float32)
    x[:, 0] = np.linspace(0, 2, 50)  # norms from sqrt(3) to sqrt(7)
    np.save(tmp_path / "x.npy", x)
    line, err = glint(capsys, "build", tmp_path / "x.npy", "--out", tmp_path / "a")
    assert line["metric"] == "ip"
    assert err == [WARNING.format("1.73", "2.65")]
    for metric in ("ip", "cos", "l2"):
        _, err = glint(
            capsys, "build", tmp_path / "x.npy", "--metric", metric, "--out", tmp_path / metric
        )
        assert err == []
    np.save(tmp_path / "unit.npy", x / np.linalg.norm(x, axis=1, keepdims=True))
    _, err = glint(capsys, "build", tmp_path / "unit.npy", "--out", tmp_path / "u")
    assert err == []


def test_metric_warning_is_not_added_to_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", clustered(300, 48, seed=32))
    line = glint_fails(
        capsys, "build", tmp_path / "x.npy", "--index", "ivfpq:m=10", "--out", tmp_path / "a"
    )
    assert "does not divide the dimension 48" in line


# -- the helpers, in process ---------------------------------------------------------------------


def test_recall_at_k_counts_valid_distinct_ids() -> None:
    found = np.array([[3, 1, 2, -1], [5, 5, 6, 7], [-1, -1, -1, -1]])
    truth = np.array([[1, 2, 3, 4], [5, 6, 9, 9], [-1, 0, 1, 2]])
    # row 0: 3 of 4; row 1: 5 and 6 (5 once); row 2: padding never matches padding
    assert recall_at_k(found, truth, 4) == 5 / 12
    assert recall_at_k(found, truth, 2) == 2 / 6  # {3,1}&{1,2}, {5}&{5,6}, none
    rng = np.random.default_rng(0)
    found, truth = rng.integers(-1, 30, (200, 12)), rng.integers(-1, 30, (200, 15))
    assert recall_at_k(found, truth, 10) == independent_recall(found, truth, 10)


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
def test_exact_knn_agrees_with_numpy(metric: str) -> None:
    x, q = clustered(700, 12, seed=8), clustered(30, 12, seed=9)
    rows = exact_knn(x, q, 5, metric)
    assert rows.dtype == np.int64 and rows.shape == (30, 5)
    np.testing.assert_array_equal(rows, brute_force(q, x, 5, metric))


def test_sample_queries_picks_whole_token_sets() -> None:
    tokens, offsets = token_sets(50, 8, seed=1)
    sets = TokenSets(tokens, offsets)
    sample = sample_queries(sets, 7, seed=3)
    rows = np.sort(np.random.default_rng(3).choice(50, 7, replace=False))
    assert sample.count == 7
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(sample[i], sets[row])
    x = clustered(20, 4)
    np.testing.assert_array_equal(sample_queries(x, 100), x)  # capped at the count, in order


def test_gt_of_row_numbers_against_an_index_with_ids(
    ann: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A ground truth of row numbers cannot be compared with an index built with --ids: said
    in one line, not reported as a recall of 0."""
    d = ann["dir"]
    np.save(d / "ids.npy", 10**9 + np.arange(N, dtype=np.int64))
    glint(
        capsys,
        "build",
        ann["hdf5"],
        "--index",
        "flat",
        "--metric",
        "cos",
        "--ids",
        d / "ids.npy",
        "--out",
        d / "with-ids",
    )
    line = glint_fails(
        capsys,
        "search",
        d / "with-ids",
        "--queries",
        ann["hdf5"],
        "--k",
        "10",
        "--gt",
        "--out",
        d / "r.npz",
    )
    assert "none of its neighbours is an id of this index, which was built with --ids" in line
