"""The hnsw kind: recall floors per storage, round trips, parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glint.index import ConfigError, build_index, load_index, parse_spec
from glint.index.hnsw import HNSWIndex, build_graph, refine_layer0

from testkit import exact_scores, recall, recall_floor

SPEC = "hnsw:m=16,ef_construction=100"
STORAGES = ["f32", "f16", "lvq8", "lvq4", "lvq4x4", "lvq4x8"]
EF_SEARCH = {"l2": 128, "cos": 256}  # the recall floors' beam widths


@pytest.fixture(scope="module")
def dataset(data) -> dict[str, np.ndarray]:
    """Base, queries, and the exact scores of every query against every row per metric."""
    base = data(10000, 96, seed=1, intrinsic=16)
    queries = data(100, 96, seed=2, intrinsic=16)
    return {
        "base": base,
        "queries": queries,
        "l2": exact_scores(queries, base, "l2"),
        "cos": exact_scores(queries, base, "cos"),
    }


@pytest.fixture(scope="module")
def graphs(dataset) -> dict[str, HNSWIndex]:
    """One f32 build per metric; the other storages reuse its graph (the build is the same)."""
    return {
        m: build_index(dataset["base"], f"{SPEC},storage=f32", m, threads=2) for m in ("l2", "cos")
    }


@pytest.mark.parametrize("metric", ["l2", "cos"])
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.slow
def test_recall_floor(dataset, graphs, storage: str, metric: str) -> None:
    spec, search = f"{SPEC},storage={storage}", {"ef_search": EF_SEARCH[metric]}
    index = graphs[metric].with_storage(dataset["base"], storage)
    assert index.spec == parse_spec(spec).spec()
    ids, _ = index.search(dataset["queries"], k=10, **search)
    assert recall(ids, dataset[metric]) >= recall_floor("hnsw", spec, metric, **search)


def test_recall_grows_with_ef_and_threads_agree(dataset) -> None:
    index = build_index(dataset["base"], f"{SPEC},storage=lvq4x8", "l2")
    low = recall(index.search(dataset["queries"], k=10, ef_search=10).ids, dataset["l2"])
    high = recall(index.search(dataset["queries"], k=10, ef_search=200).ids, dataset["l2"])
    assert high > low
    one = index.search(dataset["queries"], k=10, ef_search=64, threads=1)
    two = index.search(dataset["queries"], k=10, ef_search=64, threads=2)
    np.testing.assert_array_equal(one.ids, two.ids)


def test_scores_follow_the_metric_convention(dataset) -> None:
    base, queries = dataset["base"], dataset["queries"][:5]
    ids, scores = build_index(base, f"{SPEC},storage=lvq4x8", "l2").search(queries, k=5)
    true = ((queries[:, None, :] - base[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(scores, true, rtol=0.02)
    assert (np.diff(scores, axis=1) >= -1e-3).all()  # smaller is better for l2


def test_round_trip_and_memory_map(tmp_path: Path, dataset) -> None:
    index = build_index(
        dataset["base"], f"{SPEC},storage=lvq4x4", "cos", ids=np.arange(10000) * 2 + 1
    )
    before = index.search(dataset["queries"], k=10, ef_search=50, rerank=20)
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    after = loaded.search(dataset["queries"], k=10, ef_search=50, rerank=20)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert (after.ids % 2 == 1).all()
    assert isinstance(loaded.store.codes, np.memmap)  # type: ignore[attr-defined]
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert "vectors.npy" not in manifest["files"]  # no float32 copy is kept
    assert manifest["spec"] == "hnsw:m=16,ef_construction=100,storage=lvq4x4"


def test_upper_layers_kept_compact_and_saved_as_before(tmp_path: Path, dataset) -> None:
    index = build_index(dataset["base"], f"{SPEC},storage=lvq4", "l2", threads=2)
    graph = index.graph
    count, m = index.count, 16
    # in memory: only the nodes above layer 0, sorted, with their rows
    assert graph.upper_nodes.dtype == np.int32 and np.all(np.diff(graph.upper_nodes) > 0)
    assert 0 < len(graph.upper_nodes) < count / 4
    assert graph.upper_levels.min() >= 1 and graph.upper_levels.max() == graph.max_level
    _, levels, offsets, upper = graph.disk_arrays()
    assert np.array_equal(np.flatnonzero(levels), graph.upper_nodes)
    assert offsets[-1] == len(upper) == int(graph.upper_levels.sum())
    held = sum(a.nbytes for a in graph.arrays())
    assert held < sum(a.nbytes for a in graph.disk_arrays()) - 8 * count  # no [n] offsets
    index.save(tmp_path / "ix")
    for name, array in zip(graph.FILES[:4], graph.disk_arrays(), strict=True):
        np.testing.assert_array_equal(np.load(tmp_path / "ix" / name), array)
    loaded = load_index(tmp_path / "ix")
    before = index.search(dataset["queries"], k=10, ef_search=40)
    after = loaded.search(dataset["queries"], k=10, ef_search=40)
    np.testing.assert_array_equal(before.ids, after.ids)
    # offsets that do not follow the levels are a damaged index, named as such
    broken = offsets.copy()
    broken[1:] += 1
    np.save(tmp_path / "broken.npy", broken)
    from glint.index import FormatError
    from glint.index.storage import IndexReader

    class Swapped(IndexReader):
        def load_array(self, name: str) -> np.ndarray:
            if name == "graph_upper_offsets.npy":
                return np.load(tmp_path / "broken.npy")
            return super().load_array(name)

    with pytest.raises(FormatError, match=r"graph_upper_offsets\.npy does not match"):
        type(graph).load(Swapped(tmp_path / "ix"), count, m)


@pytest.mark.slow
def test_memory_is_a_fraction_of_float(dataset) -> None:
    base = dataset["base"]
    f32 = build_index(base, f"{SPEC},storage=f32", "l2").memory_bytes
    lvq4x8 = build_index(base, f"{SPEC},storage=lvq4x8", "l2").memory_bytes
    lvq4 = build_index(base, f"{SPEC},storage=lvq4", "l2").memory_bytes
    assert lvq4 < lvq4x8 < f32
    assert lvq4 < 0.5 * f32


def test_search_parameters_are_checked(dataset) -> None:
    index = build_index(dataset["base"][:500], f"{SPEC},storage=lvq8", "l2")
    q = dataset["queries"][:2]
    with pytest.raises(ConfigError, match="rerank needs a storage with a residual level"):
        index.search(q, k=5, rerank=10)
    with pytest.raises(ConfigError, match="invalid value 0 for key 'ef_search'"):
        index.search(q, k=5, ef_search=0)
    with pytest.raises(ConfigError, match=r"unknown key 'nprobe' .* valid keys: ef_search, rerank"):
        index.search(q, k=5, nprobe=3)
    ids, _ = index.search(q, k=50, ef_search=10)  # ef below k is raised to k
    assert (ids >= 0).all() and ids.shape == (2, 50)
    # The default a service caps is the beam width a search without parameters uses.
    resolved = index.resolve_params(5, {})
    assert resolved.given() == {} and resolved.ef_search == 64
    np.testing.assert_array_equal(
        index.search(q, k=5).ids, index.search(q, k=5, ef_search=resolved.ef_search).ids
    )


def test_tiny_index_pads(dataset) -> None:
    index = build_index(dataset["base"][:3], "hnsw:storage=lvq4x8", "l2")
    ids, scores = index.search(dataset["base"][:1], k=5)
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2] and (ids[0, 3:] == -1).all()
    assert np.isinf(scores[0, 3:]).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hnsw:m=2", r"invalid value '2' for key 'm' .* greater than or equal to 4"),
        ("hnsw:storage=lvq2", r"invalid value 'lvq2' for key 'storage'"),
        (
            "hnsw:ef=3",
            r"unknown key 'ef' for index kind 'hnsw'; valid keys: m, ef_construction, storage",
        ),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_index(np.zeros((10, 4), np.float32), spec, "l2")


def test_visited_tags_survive_reuse_and_wrap_around(dataset) -> None:
    index = build_index(dataset["base"][:3000], f"{SPEC},storage=lvq8", "l2")
    queries = dataset["queries"][:20]
    first = index.search(queries, k=10, ef_search=40, threads=1)
    again = index.search(queries, k=10, ef_search=40, threads=1)  # tags carried over
    np.testing.assert_array_equal(first.ids, again.ids)
    visited, tag_state = index._visited_set()  # type: ignore[attr-defined]
    visited[:] = 65532  # the last query visited every node; tags wrap two queries later
    tag_state[0] = 65532
    wrapped = index.search(queries, k=10, ef_search=40, threads=1)
    np.testing.assert_array_equal(first.ids, wrapped.ids)


def test_refined_layer0_is_valid_deterministic_and_nearer(dataset) -> None:
    """The Vamana pass (alpha > 1) gives every node a clean list (no self, no repeats, in range,
    -1 only as padding) whatever the thread count, holding more of its true neighbours than
    HNSW's own rule kept, and search finds as much with it."""
    base = dataset["base"]
    plain = build_graph(base, 16, 100, "l2", threads=1)
    one = refine_layer0(base, plain, "l2", 1.2, 100, threads=1)
    two = refine_layer0(base, plain, "l2", 1.2, 100, threads=2)
    np.testing.assert_array_equal(one.layer0, two.layer0)
    n = base.shape[0]
    rows = one.layer0
    for node in range(0, n, 37):
        row = rows[node]
        listed = row[row >= 0]
        assert (row[len(listed) :] == -1).all()
        assert len(set(listed.tolist())) == len(listed)
        assert node not in listed and (listed < n).all()
    sample = np.arange(0, n, 50)
    dist = ((base[sample, None, :] - base[None, :, :]) ** 2).sum(-1)
    dist[np.arange(len(sample)), sample] = np.inf
    true = np.argsort(dist, axis=1)[:, :10]

    def held(graph) -> float:
        found = [len(np.intersect1d(graph.layer0[s], t)) for s, t in zip(sample, true, strict=True)]
        return float(np.mean(found))

    assert held(one) > held(plain)
    index = build_index(base, f"{SPEC},storage=f32", "l2", threads=1)
    refined = index.with_graph(one)
    for ef in (16, 32):
        got = recall(refined.search(dataset["queries"], k=10, ef_search=ef).ids, dataset["l2"])
        plain_index = index.with_graph(plain)
        want = recall(plain_index.search(dataset["queries"], k=10, ef_search=ef).ids, dataset["l2"])
        assert got >= want - 0.02


def test_inner_product_over_unnormalised_vectors_keeps_faiss_graph(dataset) -> None:
    """The refinement prunes by L2 distance, which ranks as the inner product only on unit
    vectors: ``ip`` over vectors of other lengths keeps the graph faiss built."""
    base = dataset["base"][:2000]
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    plain = build_graph(base, 16, 100, "ip", threads=1, alpha=1.0)
    kept = build_graph(base, 16, 100, "ip", threads=1, alpha=1.1)
    np.testing.assert_array_equal(kept.layer0, plain.layer0)
    unit_plain = build_graph(unit, 16, 100, "ip", threads=1, alpha=1.0)
    refined = build_graph(unit, 16, 100, "ip", threads=1, alpha=1.1)
    assert (refined.layer0 != unit_plain.layer0).any()
