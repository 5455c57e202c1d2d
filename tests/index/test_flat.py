from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glint.index import ConfigError, DimensionError, InputError, build_index, load_index
from glint.index.storage import IndexWriter

from testkit import exact_scores, recall, recall_floor


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
@pytest.mark.parametrize("storage", ["f32", "f16", "lvq8"])
def test_flat_matches_brute_force(data, metric: str, storage: str) -> None:
    base, queries = data(3000, 48, seed=1), data(50, 48, seed=2)
    spec = f"flat:storage={storage}"
    index = build_index(base, spec, metric)
    ids, scores = index.search(queries, k=10)
    found = recall(ids, exact_scores(queries, base, metric))
    assert found >= recall_floor("flat", spec, metric)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (50, 10)
    # best first, in the metric's own convention
    steps = np.diff(scores, axis=1)
    assert np.all(steps <= 1e-6) if metric != "l2" else np.all(steps >= -1e-6)


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
@pytest.mark.parametrize("storage", ["f32", "f16", "lvq8"])
def test_one_query_answers_as_in_a_batch(data, metric: str, storage: str) -> None:
    # a few queries are scored by compiled loops, a batch by BLAS: the answers must agree
    base, queries = data(20000, 40, seed=5), data(12, 40, seed=6)  # two row blocks
    index = build_index(base, f"flat:storage={storage}", metric)
    batch = index.search(queries, k=7)
    for i in (0, 5, 11):
        one = index.search(queries[i], k=7)
        np.testing.assert_array_equal(one.ids[0], batch.ids[i])
        np.testing.assert_allclose(one.scores[0], batch.scores[i], rtol=1e-5, atol=1e-5)


def test_scores_are_true_scores(data) -> None:
    base, queries = data(500, 16, seed=3), data(5, 16, seed=4)
    ids, scores = build_index(base, "flat", "l2").search(queries, k=3)
    expected = ((queries[:, None, :] - base[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)
    ids, scores = build_index(base, "flat", "ip").search(queries, k=3)
    np.testing.assert_allclose(
        scores, np.einsum("qd,qkd->qk", queries, base[ids]), rtol=1e-4, atol=1e-3
    )


def test_k_larger_than_count_pads(data) -> None:
    index = build_index(data(4, 8), "flat", "l2")
    ids, scores = index.search(data(2, 8, seed=9), k=6)
    assert (ids[:, 4:] == -1).all() and np.isinf(scores[:, 4:]).all()
    assert sorted(ids[0, :4].tolist()) == [0, 1, 2, 3]


def test_external_ids_and_payloads_round_trip(tmp_path: Path, data) -> None:
    base = data(200, 8)
    ids = np.arange(200, dtype=np.int64) * 10 + 5
    payloads = [{"row": i} if i % 2 == 0 else None for i in range(200)]
    index = build_index(base, "flat", "l2", ids=ids, payloads=payloads)
    found, _ = index.search(base[:3], k=1)
    assert found[:, 0].tolist() == [5, 15, 25]
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert loaded.payloads([5, 15, 25, 999]) == {5: {"row": 0}, 15: None, 25: {"row": 2}, 999: None}
    again, _ = loaded.search(base[:3], k=1)
    np.testing.assert_array_equal(found, again)


def test_single_vector_query_and_threads(data) -> None:
    base = data(1000, 16)
    index = build_index(base, "flat", "ip")
    one = index.search(base[7], k=5)
    many = index.search(np.repeat(base[7:8], 600, axis=0), k=5, threads=2)
    assert one.ids.shape == (1, 5)
    assert (many.ids == one.ids).all()


def test_bad_queries_and_k(data) -> None:
    index = build_index(data(100, 8), "flat", "ip")
    with pytest.raises(DimensionError, match="expected dimension 8, got 7"):
        index.search(np.zeros((1, 7), np.float32), k=1)
    with pytest.raises(InputError, match="row 0"):
        index.search(np.full((1, 8), np.nan, np.float32), k=1)
    for bad_k in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="k must be a positive integer"):
            index.search(np.zeros((1, 8), np.float32), k=bad_k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown key 'nprobe'"):
        index.search(np.zeros((1, 8), np.float32), k=1, nprobe=3)


def test_build_rejects_bad_inputs(data) -> None:
    base = data(10, 4)
    with pytest.raises(ConfigError, match="unknown metric 'dot'"):
        build_index(base, "flat", "dot")
    with pytest.raises(InputError, match="duplicate"):
        build_index(base, "flat", "ip", ids=[1] * 10)
    with pytest.raises(InputError, match="10"):
        build_index(base, "flat", "ip", ids=[1, 2, 3])
    with pytest.raises(InputError, match="3 payloads for 10 vectors"):
        build_index(base, "flat", "ip", payloads=[{}] * 3)


def test_memory_accounting(data) -> None:
    base = data(1000, 32)
    assert build_index(base, "flat:storage=f16", "ip").memory_bytes == 1000 * 32 * 2
    assert build_index(base, "flat", "ip").memory_bytes == 1000 * 32 * 4


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_lvq8_scores_are_those_of_the_decoded_vectors(tmp_path: Path, data, metric: str) -> None:
    from glint.index.lvq import LVQCodes

    base, queries = data(700, 20, seed=5), data(6, 20, seed=6)
    index = build_index(base, "flat:storage=lvq8", metric)
    store = index.store
    decoded = LVQCodes(8, 0, 20, store.mean, np.asarray(store.codes), None).decode()
    reference = build_index(decoded, "flat", metric).search(queries, k=8)
    ids, scores = index.search(queries, k=8)
    np.testing.assert_array_equal(ids, reference.ids)
    np.testing.assert_allclose(scores, reference.scores, rtol=1e-4, atol=1e-3)
    # 1 byte per dimension + Δ and bias per vector, the mean, and squared norms for l2
    norms = 700 * 4 if metric == "l2" else 0
    assert index.memory_bytes == 700 * (20 + 4) + 20 * 4 + norms
    loaded = load_index(index.save(tmp_path / "lvq"))
    again = loaded.search(queries, k=8, threads=2)
    np.testing.assert_array_equal(again.ids, ids)
    np.testing.assert_array_equal(again.scores, scores)


def test_flat_f16_indices_of_glint_0_1_still_load(tmp_path: Path, data) -> None:
    """glint 0.1 kept a flat index's float16 vectors as float16 in ``vectors.npy``; the vector
    store, as in every kind, now keeps them in ``vectors_f16.npy``. Both load and agree."""
    base, queries = data(300, 16, seed=9), data(5, 16, seed=10)
    new = build_index(base, "flat:storage=f16", "l2")
    saved = load_index(new.save(tmp_path / "new"))
    assert saved.manifest is not None
    assert {"vectors_f16.npy", "sq_norms.npy"} == set(saved.manifest["files"])
    with IndexWriter(tmp_path / "old") as writer:
        writer.save_array("vectors.npy", base.astype(np.float16))
        writer.save_array("sq_norms.npy", new.sq_norms)  # type: ignore[attr-defined]
        writer.commit(
            {
                "kind": "flat",
                "spec": "flat:storage=f16",
                "config": {"storage": "f16"},
                "metric": "l2",
                "dim": 16,
                "count": 300,
                "multivector": False,
                "build": {},
            }
        )
    manifest_path = tmp_path / "old" / "manifest.json"  # as glint 0.1 wrote it: version 1
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 1
    del manifest["manifest_sha256"]  # version 3 added the manifest's checksum
    manifest_path.write_text(json.dumps(manifest))
    old = load_index(tmp_path / "old")
    expected = new.search(queries, k=5)
    for index in (old, saved):
        found = index.search(queries, k=5)
        np.testing.assert_array_equal(found.ids, expected.ids)
        np.testing.assert_array_equal(found.scores, expected.scores)


def test_top_k_keeps_rows_of_any_score_and_breaks_ties_by_row() -> None:
    from glint.index.topk import TopK

    top = TopK(2, 4)
    block = np.array(
        [[1.0, -np.inf, 1.0, np.nan, 0.5], [-np.inf, -np.inf, 2.0, 2.0, 2.0]], np.float32
    )
    top.push(block[:, :3], 0)
    top.push(block[:, 3:], 3)
    rows, scores = top.result()
    # NaN is kept over any number (as NumPy's selection keeps it), so a caller that refuses
    # non-finite scores sees it, and is listed last; ties go to the smaller row; -inf rows
    # are kept over padding
    assert rows[0].tolist() == [0, 2, 4, 3] and np.isnan(scores[0, 3])
    assert rows[1].tolist() == [2, 3, 4, 0] and scores[1, 3] == -np.inf
    wide = TopK(1, 5)
    wide.push(np.array([[3.0, 1.0]], np.float32), 0)
    rows, scores = wide.result()
    assert rows[0].tolist() == [0, 1, -1, -1, -1] and np.isneginf(scores[0, 2:]).all()
