"""The ivfpq kind: recall with re-ranking, round trips, validation, threads."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from glint.index import ConfigError, FormatError, build_index, load_index, parse_spec
from glint.index.errors import OverLimitError
from glint.index.ivfpq import auto_m, auto_nlist

from testkit import exact_scores, recall, recall_floor

DIM = 96
# 2 dimensions per sub-quantizer, 4-bit fast-scan, LVQ-8 re-rank. With 4 dimensions each
# (m=24), inner product on this unnormalised clustered data puts too few true neighbours in
# the first 100 candidates (about 0.78 recall after re-ranking): 16 centroids per 4-d
# sub-space are too coarse here, so the recall tests use the finer codes.
SPEC = "ivfpq:nlist=64,m=48"
SEARCH = {"nprobe": 16, "rerank_k": 100}


@pytest.fixture(scope="module")
def dataset(data) -> dict[str, np.ndarray]:
    """10,000 base vectors and 200 queries drawn from the same clustered distribution, and
    the exact scores of every query against every row per metric."""
    points = data(10200, DIM, seed=3, intrinsic=16)
    base, queries = points[:10000], points[10000:]
    truth = {m: exact_scores(queries, base, m) for m in ("ip", "l2", "cos")}
    return {"base": base, "queries": queries, **truth}


@pytest.fixture(scope="module")
def built(dataset) -> dict[str, object]:
    """The default configuration per metric, built once."""
    return {m: build_index(dataset["base"], SPEC, m, threads=2) for m in ("ip", "l2", "cos")}


@pytest.mark.parametrize("metric", ["ip", "l2", "cos"])
@pytest.mark.slow
def test_recall_with_lvq8_rerank(dataset, built, metric: str) -> None:
    index = built[metric]
    found = index.search(dataset["queries"], 10, **SEARCH).ids
    assert recall(found, dataset[metric]) >= recall_floor("ivfpq", SPEC, metric, **SEARCH)


@pytest.mark.parametrize(
    "extra",
    ["rerank=f32", "nbits=8", "opq=true"],
)
@pytest.mark.slow
def test_recall_of_variants(dataset, extra: str) -> None:
    spec = f"{SPEC},{extra}"
    index = build_index(dataset["base"], spec, "l2", threads=2)
    found = index.search(dataset["queries"], 10, **SEARCH).ids
    assert recall(found, dataset["l2"]) >= recall_floor("ivfpq", spec, "l2", **SEARCH)


@pytest.mark.slow
def test_rerank_is_what_lifts_recall(dataset, built) -> None:
    plain = build_index(dataset["base"], f"{SPEC},rerank=none", "l2", threads=2)
    without = recall(plain.search(dataset["queries"], 10, nprobe=16).ids, dataset["l2"])
    with_rerank = recall(built["l2"].search(dataset["queries"], 10, **SEARCH).ids, dataset["l2"])
    assert without < with_rerank
    assert plain.stats()["ivfpq"]["rerank_bytes"] == 0
    # the lists alone cost a few tens of bytes per vector: 12 code bytes + an 8-byte id
    assert plain.memory_bytes / plain.count < 40


def test_default_candidates_are_what_a_search_uses(dataset, built) -> None:
    index, q = built["l2"], dataset["queries"]
    resolved = index.resolve_params(7, {"nprobe": 16})
    assert resolved.rerank_k == 70 and resolved.given() == {"nprobe": 16}
    found = index.search(q, 7, nprobe=16)
    same = index.search(q, 7, nprobe=16, rerank_k=resolved.rerank_k)
    np.testing.assert_array_equal(found.ids, same.ids)
    np.testing.assert_array_equal(found.ids, index.search(q, 7, params=resolved).ids)
    assert not np.array_equal(found.ids, index.search(q, 7, nprobe=16, rerank_k=8).ids)
    plain = build_index(dataset["base"][:2000], "ivfpq:nlist=16,m=48,rerank=none", "l2")
    assert plain.resolve_params(7, {}).rerank_k is None  # no re-ranking, no rerank_k
    assert plain.resolve_params(7, {}).capped(10).rerank_k is None
    # Lowered to the cap, or to what rerank_k can be (16384) when the cap is above that.
    assert index.resolve_params(7, {}).capped(50).rerank_k == 50
    assert index.resolve_params(7, {"rerank_k": None}).capped(50).rerank_k == 50
    assert index.resolve_params(7, {"rerank_k": 40}).capped(50).rerank_k == 40
    with pytest.raises(OverLimitError, match="parameter 'rerank_k': must be at most 50"):
        index.resolve_params(7, {"rerank_k": 60}).capped(50)
    assert index.resolve_params(5000, {}).capped(20_000).rerank_k == 16384


def test_scores_follow_the_metric(dataset, built) -> None:
    q = dataset["queries"][:5]
    ip = built["ip"].search(q, 10, **SEARCH)
    l2 = built["l2"].search(q, 10, **SEARCH)
    assert np.all(np.diff(ip.scores, axis=1) <= 1e-6)  # larger is better, best first
    assert np.all(np.diff(l2.scores, axis=1) >= -1e-6)  # squared distances, smallest first
    # the re-ranked scores are LVQ-8 estimates of the true ones
    rows = ip.ids[0]
    true = dataset["base"][rows] @ q[0]
    assert np.allclose(ip.scores[0], true, rtol=0.02, atol=0.05 * np.abs(true).max())


@pytest.mark.slow
def test_auto_values_are_resolved_into_the_spec(dataset) -> None:
    index = build_index(dataset["base"][:4000], "ivfpq", "ip", threads=2)
    assert index.config.nlist == auto_nlist(4000) == 102 or index.config.nlist == auto_nlist(4000)
    assert index.config.m == auto_m(DIM) == 24
    assert "auto" not in index.spec
    assert index.spec.startswith(f"ivfpq:nlist={auto_nlist(4000)},m=24,nbits=4")


def test_auto_nlist_and_m() -> None:
    assert auto_nlist(100_000) == 512
    assert auto_nlist(1_000_000) == 2048
    assert auto_nlist(1000) == 25  # capped at 39 training vectors per list
    assert auto_m(384) == 96 and auto_m(100) == 25 and auto_m(7) == 1


@pytest.mark.slow
def test_save_load_round_trip(tmp_path, dataset, built) -> None:
    index = built["cos"]
    before = index.search(dataset["queries"], 10, **SEARCH)
    path = index.save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    assert "ivfpq.faiss" in manifest["files"] and manifest["files"]["ivfpq.faiss"]["sha256"]
    assert manifest["config"]["nlist"] == 64 and manifest["build"]["train_vectors"] == 10000
    loaded = load_index(path)
    after = loaded.search(dataset["queries"], 10, **SEARCH)
    assert np.array_equal(before.ids, after.ids)
    # numba compiles the re-rank separately for read-only memory maps, and on some CPUs (AMD
    # Zen 3 here) that machine code rounds the last bit of a score differently
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-6, atol=1e-6)
    assert loaded.spec == index.spec
    assert loaded.memory_bytes == pytest.approx(index.memory_bytes, rel=0.01)


@pytest.mark.slow
def test_eight_bit_lists_are_memory_mapped(tmp_path, dataset) -> None:
    index = build_index(dataset["base"], f"{SPEC},nbits=8,rerank=none", "ip", threads=2)
    before = index.search(dataset["queries"], 10, nprobe=8)
    loaded = load_index(index.save(tmp_path / "idx"))
    ivf = faiss.extract_index_ivf(loaded.faiss)
    assert not isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.BlockInvertedLists)
    assert np.array_equal(before.ids, loaded.search(dataset["queries"], 10, nprobe=8).ids)


def test_damaged_faiss_file_is_refused(tmp_path, dataset, built) -> None:
    path = built["ip"].save(tmp_path / "idx")
    target = path / "ivfpq.faiss"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"ivfpq\.faiss: damaged index, sha256"):
        load_index(path)


def test_external_ids_and_payloads(dataset) -> None:
    base = dataset["base"][:3000]
    ids = np.arange(3000, dtype=np.int64) * 7 + 100
    payloads = [{"row": i} for i in range(3000)]
    index = build_index(base, "ivfpq:nlist=16,m=24", "l2", ids=ids, payloads=payloads)
    hit = index.search(base[42], 1, nprobe=16).ids[0, 0]
    assert hit == 42 * 7 + 100
    assert index.payloads([hit]) == {hit: {"row": 42}}


def test_threads_give_the_same_answer_and_leave_openmp_alone(dataset, built) -> None:
    before = faiss.omp_get_max_threads()
    one = built["ip"].search(dataset["queries"], 10, threads=1, **SEARCH)
    two = built["ip"].search(dataset["queries"], 10, threads=2, **SEARCH)
    assert np.array_equal(one.ids, two.ids)
    assert faiss.omp_get_max_threads() == before


def test_k_beyond_candidates_pads(dataset) -> None:
    index = build_index(dataset["base"][:500], "ivfpq:nlist=4,m=24", "l2")
    result = index.search(dataset["queries"][:2], 600, nprobe=4)
    assert (result.ids[:, :500] >= 0).all() and (result.ids[:, 500:] == -1).all()
    assert np.isinf(result.scores[:, 500:]).all()


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ivfpq:nbits=5", r"invalid value '5' for key 'nbits'.*must be 4 or 8"),
        ("ivfpq:rerank=lvq4", r"invalid value 'lvq4' for key 'rerank'"),
        ("ivfpq:opq=maybe", r"invalid value 'maybe' for key 'opq'"),
        ("ivfpq:nlist=0", r"invalid value '0' for key 'nlist'"),
        ("ivfpq:m=-3", r"invalid value '-3' for key 'm'"),
        ("ivfpq:nprobe=8", r"unknown key 'nprobe' for index kind 'ivfpq'; valid keys: nlist, m"),
    ],
)
def test_invalid_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)


def test_m_must_divide_the_dimension(dataset) -> None:
    with pytest.raises(ConfigError, match=r"m=50 does not divide the dimension 96.*32, 48, 96"):
        build_index(dataset["base"][:2000], "ivfpq:nlist=8,m=50", "ip")


def test_nlist_beyond_the_sample_suggests_a_value(dataset) -> None:
    base = dataset["base"][:1000]
    with pytest.raises(
        ConfigError,
        match=r"nlist=4096 is larger than the training sample \(1000 vectors\); use "
        r"nlist=25 \(or nlist=auto\)",
    ):
        build_index(base, "ivfpq:nlist=4096,m=24", "ip")


def test_eight_bits_need_256_vectors(dataset) -> None:
    with pytest.raises(ConfigError, match=r"nbits=8 trains 256 centroids .* there are 100"):
        build_index(dataset["base"][:100], "ivfpq:nlist=2,m=24,nbits=8", "ip")


def test_invalid_search_parameters(built, dataset) -> None:
    q = dataset["queries"][:1]
    with pytest.raises(ConfigError, match=r"nprobe=65 is larger than nlist=64"):
        built["ip"].search(q, 10, nprobe=65)
    with pytest.raises(ConfigError, match=r"unknown key 'ef_search'.*valid keys: nprobe, rerank_k"):
        built["ip"].search(q, 10, ef_search=10)
    plain = build_index(dataset["base"][:2000], "ivfpq:nlist=8,m=24,rerank=none", "ip")
    with pytest.raises(ConfigError, match=r"rerank_k needs an index built with rerank=lvq8"):
        plain.search(q, 10, rerank_k=50)


@pytest.mark.slow
def test_build_is_deterministic(dataset) -> None:
    base = dataset["base"][:4000]
    a = build_index(base, "ivfpq:nlist=32,m=24", "ip", threads=2)
    b = build_index(base, "ivfpq:nlist=32,m=24", "ip", threads=2)
    assert faiss.serialize_index(a.faiss).tobytes() == faiss.serialize_index(b.faiss).tobytes()


@pytest.mark.slow
def test_residual_codes_are_chosen_where_they_win(dataset, monkeypatch) -> None:
    """On clustered data the lists carry most of each vector: the build codes residuals, and
    that beats coding the vectors (forced here by pretending the lists explain nothing)."""
    spec, truth = "ivfpq:nlist=64,m=24", dataset["l2"]
    chosen = build_index(dataset["base"], spec, "l2", threads=2)
    assert chosen.build_info["residual"] is True and chosen.build_info["residual_share"] < 0.5
    assert chosen.stats()["ivfpq"]["faiss"] == "IVF64,PQ24x4fsr"
    monkeypatch.setattr("glint.index.ivfpq_train.residual_share", lambda sample, nlist: 1.0)
    other = build_index(dataset["base"], spec, "l2", threads=2)
    assert other.build_info["residual"] is False
    found = {
        name: recall(index.search(dataset["queries"], 10, **SEARCH).ids, truth)
        for name, index in (("residual", chosen), ("vectors", other))
    }
    assert found["residual"] > found["vectors"] + 0.05
