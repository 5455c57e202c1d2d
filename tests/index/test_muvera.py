"""The muvera kind: FDE candidates re-ranked by exact Chamfer, saved, reloaded, validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glint.index import (
    ConfigError,
    DimensionError,
    FormatError,
    InputError,
    TokenSets,
    build_index,
    load_index,
)
from glint.index.multivec import pool_tokens, read_token_sets

from testkit import chamfer_scores, recall, recall_floor, top_k

SPEC = "muvera:k_sim=3,dim_proj=16,r_reps=12,inner=(hnsw:m=16,storage=lvq8)"
FLAT_INNER = "muvera:k_sim=3,r_reps=12,inner=(flat)"


@pytest.fixture(scope="module")
def corpus(multivec, multivec_queries):
    """Documents, queries, their exact top 10, and the exact Chamfer score of every query
    against every document."""
    docs = multivec(1500, 32, seed=21)
    queries = multivec_queries(docs, 30, seed=22)
    exact = chamfer_scores(docs, queries)
    return docs, queries, top_k(exact, 10)[0], exact


@pytest.mark.parametrize("tokens", ["f32", "f16", "lvq8"])
def test_recall_against_exact_chamfer(corpus, tokens: str) -> None:
    docs, queries, truth, exact = corpus
    spec = SPEC.replace("muvera:", f"muvera:tokens={tokens},")
    search = {"candidates": 200, "ef_search": 200}
    index = build_index(docs, spec, "ip")
    assert index.multivector and index.dim == 32 and index.count == 1500
    found = index.search(queries, k=10, **search)
    assert recall(found.ids, exact) >= recall_floor("muvera", spec, "ip", **search)
    # The scores are exact Chamfer similarities (up to the token storage's precision).
    hit = found.ids[:, 0] == truth[:, 0]
    tol = {"f32": 1e-4, "f16": 5e-3, "lvq8": 5e-2}[tokens]
    np.testing.assert_allclose(found.scores[hit, 0], exact[hit].max(axis=1), rtol=tol, atol=tol)
    # More candidates never hurt, and few candidates cost recall (the FDE alone is coarse).
    few = index.search(queries, k=10, candidates=10, ef_search=200)
    assert recall(few.ids, exact) < recall(found.ids, exact)


@pytest.mark.slow
def test_inner_kinds_flat_and_ivfpq(corpus) -> None:
    docs, queries, _, exact = corpus
    flat = build_index(docs, FLAT_INNER, "ip")
    found = flat.search(queries, 10, candidates=200)
    assert recall(found.ids, exact) >= recall_floor("muvera", FLAT_INNER, "ip", candidates=200)
    spec = "muvera:k_sim=3,r_reps=12,inner=(ivfpq:nlist=16,m=48,rerank=none)"
    pq = build_index(docs, spec, "ip")
    found = pq.search(queries, 10, candidates=200, nprobe=16)
    assert recall(found.ids, exact) >= recall_floor("muvera", spec, "ip", candidates=200, nprobe=16)
    assert pq.stats()["muvera"]["inner"].startswith("ivfpq:nlist=16,m=48")


def test_single_query_list_and_token_sets_agree(corpus) -> None:
    docs, queries, _, _ = corpus
    index = build_index(docs, SPEC, "ip")
    sets = TokenSets(*queries)
    batch = index.search(sets, 10, candidates=100)
    one = index.search(sets[4], 10, candidates=100)
    listed = index.search([sets[i] for i in range(5)], 10, candidates=100)
    np.testing.assert_array_equal(one.ids[0], batch.ids[4])
    np.testing.assert_array_equal(listed.ids, batch.ids[:5])
    two = index.search(sets, 10, candidates=100, threads=2)
    np.testing.assert_array_equal(two.ids, batch.ids)


def test_save_load_round_trip(tmp_path: Path, corpus) -> None:
    docs, queries, _, _ = corpus
    ids = np.arange(1500, dtype=np.int64) * 7 + 3
    payloads = [{"doc": int(i)} for i in range(1500)]
    index = build_index(docs, SPEC, "cos", ids=ids, payloads=payloads)
    before = index.search(queries, 10, candidates=80)
    index.save(tmp_path / "mv")
    loaded = load_index(tmp_path / "mv")
    after = loaded.search(queries, 10, candidates=80)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    assert set(after.ids.ravel()) <= set(ids.tolist())
    assert loaded.payloads([after.ids[0, 0]])[int(after.ids[0, 0])] == {
        "doc": int((after.ids[0, 0] - 3) // 7)
    }
    assert loaded.spec == index.spec and "seed=" in loaded.spec
    # Query FDEs after the reload equal those before (the random matrices are stored).
    np.testing.assert_array_equal(loaded.encode_queries(queries), index.encode_queries(queries))
    stats = loaded.stats()["muvera"]
    assert stats["fde_dim"] == 12 * 8 * 16 and stats["stored_tokens"] == int(docs[1][-1])
    # A flipped byte in the stored FDE matrices is caught by the checksum.
    target = tmp_path / "mv" / "fde_projection.npy"
    raw = bytearray(target.read_bytes())
    raw[-5] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="checksum"):
        load_index(tmp_path / "mv")


@pytest.mark.slow
def test_token_pooling_divides_stored_tokens_and_keeps_recall(corpus) -> None:
    docs, queries, _, exact = corpus
    lengths = np.diff(docs[1])
    search = {"candidates": 300, "ef_search": 300}
    for factor in (2, 3):
        spec = SPEC.replace("muvera:", f"muvera:tokens=f32,pool_factor={factor},")
        index = build_index(docs, spec, "ip")
        kept = -(-lengths // factor)
        assert index.stats()["muvera"]["stored_tokens"] == int(kept.sum())
        pooled = recall(index.search(queries, 10, **search).ids, exact)
        # Keeping as many tokens by truncation instead of clustering loses more.
        cut = TokenSets.from_list(
            [docs[0][docs[1][i] : docs[1][i] + kept[i]] for i in range(len(lengths))]
        )
        truncated = build_index(cut, spec.replace(f"pool_factor={factor}", "pool_factor=1"), "ip")
        short = recall(truncated.search(queries, 10, **search).ids, exact)
        floor = recall_floor("muvera", spec, "ip", **search)
        assert pooled >= floor and pooled > short, (factor, pooled, short)


def test_pooled_index_encodes_fdes_from_every_token(corpus) -> None:
    # Pooling shrinks the stored tokens only: the FDEs the inner index holds are those of the
    # whole input sets, not of the pooled ones.
    docs, _, _, _ = corpus
    sets = TokenSets(*docs)
    index = build_index(
        sets, "muvera:k_sim=3,r_reps=12,tokens=f32,pool_factor=3,inner=(flat)", "ip"
    )
    stored = np.asarray(index.inner.store.floats())  # type: ignore[attr-defined]
    full = index.encoder.encode_documents(sets.tokens, sets.offsets)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(stored, full)
    pooled = pool_tokens(sets, 3)
    assert int(index.stats()["muvera"]["stored_tokens"]) == int(pooled.offsets[-1])
    from_pooled = index.encoder.encode_documents(pooled.tokens, pooled.offsets)  # type: ignore[attr-defined]
    assert not np.array_equal(stored, from_pooled)


def test_pooling_keeps_cluster_means() -> None:
    # Two tight groups of tokens pool into their two means.
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0, 0, 0], np.float32) + 0.01 * rng.standard_normal((3, 4))
    b = np.array([0, 0, 1.0, 0], np.float32) + 0.01 * rng.standard_normal((3, 4))
    tokens = np.concatenate([a, b[:1], a[:0], b[1:]]).astype(np.float32)
    pooled = pool_tokens(TokenSets(tokens, np.array([0, 6])), 3)
    np.testing.assert_array_equal(pooled.offsets, [0, 2])
    np.testing.assert_allclose(pooled.tokens[0], a.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(pooled.tokens[1], b.mean(axis=0), atol=1e-6)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda t, o: (t, o[::-1]), InputError, "offsets must start at 0"),
        (
            lambda t, o: (t, np.concatenate([[0, 5, 3], o[3:]])),
            InputError,
            "not monotone: offsets\\[2\\] = 3 is less than offsets\\[1\\] = 5",
        ),
        (
            lambda t, o: (t, np.concatenate([[0, 0], o[1:]])),
            InputError,
            "set 0 is empty",
        ),
        (lambda t, o: (t, o[:-1]), InputError, "offsets end at .* but there are .* tokens"),
        (lambda t, o: (t, o.astype(np.float32)), InputError, "offsets must be integers"),
        (lambda t, o: [t[:3], t[3:5, :16]], DimensionError, "set 1 has token dimension 16"),
        (lambda t, o: [t[:3], t[3:3]], InputError, "set 1 has no tokens"),
        (lambda t, o: np.zeros(5), InputError, "expected token sets"),
    ],
)
def test_bad_token_sets_are_refused(multivec, make, error, message) -> None:
    tokens, offsets = multivec(20, 32, seed=1)
    with pytest.raises(error, match=message):
        build_index(make(tokens, offsets), "muvera", "ip")


def test_bad_queries_params_and_metric(corpus) -> None:
    docs, queries, _, _ = corpus
    index = build_index(docs, SPEC, "ip")
    with pytest.raises(DimensionError, match="token dimension 16 does not match 32"):
        index.search(np.ones((3, 16), np.float32), 10)
    with pytest.raises(
        ConfigError, match=r"unknown key 'nprobe' .* valid keys: candidates, ef_search"
    ):
        index.search(TokenSets(*queries), 10, nprobe=4)
    with pytest.raises(ConfigError, match="key 'candidates'"):
        index.search(TokenSets(*queries), 10, candidates=0)
    with pytest.raises(InputError, match="all values must be finite"):
        index.search(np.full((2, 32), np.nan, np.float32), 10)
    with pytest.raises(ConfigError, match="use metric ip or cos"):
        build_index(docs, SPEC, "l2")
    with pytest.raises(ConfigError, match="token sets need the muvera kind"):
        build_index(TokenSets(*docs), "hnsw", "ip")
    with pytest.raises(ConfigError, match="single-vector index kind"):
        build_index(docs, "muvera:inner=(muvera)", "ip")


def test_default_candidates_are_max_of_ten_k_and_a_thousand(corpus) -> None:
    docs, queries, _, exact = corpus
    index = build_index(docs, FLAT_INNER, "ip")
    default = index.search(queries, 10)
    np.testing.assert_array_equal(default.ids, index.search(queries, 10, candidates=1000).ids)
    assert not np.array_equal(default.ids, index.search(queries, 10, candidates=100).ids)
    assert recall(default.ids, exact) >= recall_floor("muvera", FLAT_INNER, "ip")
    # 10·k above a thousand: 2,000 for k=200, here every one of the 1,500 documents.
    wide = index.search(queries, 200)
    np.testing.assert_array_equal(wide.ids, index.search(queries, 200, candidates=1500).ids)
    assert not np.array_equal(wide.ids, index.search(queries, 200, candidates=1000).ids)
    # The index resolves the default it uses, which a service lowers to its cap.
    assert index.resolve_params(10, {}).candidates == 1000
    assert index.resolve_params(200, {}).candidates == 2000
    assert index.resolve_params(10, {}).capped(500).candidates == 500
    assert index.resolve_params(10, {"candidates": None}).capped(500).candidates == 500
    assert index.resolve_params(10, {"candidates": 40}).capped(500).candidates == 40
    assert index.resolve_params(10, {}).capped(1000).candidates == 1000


def test_capped_defaults_follow_the_depth_asked_of_the_inner_index(corpus) -> None:
    """The inner index's defaults are those of the search it is asked for: ``candidates``
    as given or as lowered (and at most the documents), never more."""
    docs = corpus[0]
    index = build_index(docs, "muvera:k_sim=3,r_reps=12,inner=(ivfpq:nlist=8,m=8)", "ip")

    def capped(params: dict, cap: int) -> tuple[int, int]:
        resolved = index.resolve_params(10, params).capped(cap)
        return resolved.candidates, resolved.inner.rerank_k

    # No candidates, cap 500: 500 candidates, whose ivfpq re-ranks 10·500 by default.
    assert capped({}, 500) == (500, 500)
    # 40 candidates asked: the inner default of 400 is under a cap of 5000, so nothing moves.
    assert capped({"candidates": 40}, 5000) == (40, 400)
    assert capped({"candidates": "40"}, 300) == (40, 300)
    # The depth is at most the 1,500 documents: 15,000 re-ranked, under a cap of 16,000.
    assert capped({"candidates": 9000}, 16_000) == (9000, 15_000)
    # Given keys stay given; a value the parser refuses is refused before any cap.
    assert capped({"rerank_k": 50}, 500) == (500, 50)
    with pytest.raises(ConfigError, match="invalid value 'many' for key 'candidates'"):
        index.resolve_params(10, {"candidates": "many"})
    found = index.search(corpus[1], 10, params=index.resolve_params(10, {}).capped(500))
    np.testing.assert_array_equal(
        found.ids, index.search(corpus[1], 10, candidates=500, rerank_k=500).ids
    )


def test_k_beyond_candidates_pads(multivec) -> None:
    docs = multivec(8, 32, seed=3)
    index = build_index(docs, "muvera:inner=(flat)", "ip")
    found = index.search(TokenSets(*docs)[0], 12, candidates=5)
    assert (found.ids[0, :8] >= 0).all() and (found.ids[0, 8:] == -1).all()
    assert found.ids[0, 0] == 0  # a document is its own best Chamfer match


def test_read_token_sets_from_npz_and_directory(tmp_path: Path, multivec) -> None:
    tokens, offsets = multivec(10, 16, seed=4)
    np.savez(tmp_path / "docs.npz", tokens=tokens, offsets=offsets)
    (tmp_path / "dir").mkdir()
    np.save(tmp_path / "dir" / "tokens.npy", tokens)
    np.save(tmp_path / "dir" / "offsets.npy", offsets)
    for source in (tmp_path / "docs.npz", tmp_path / "dir"):
        sets = read_token_sets(source)
        np.testing.assert_array_equal(sets.tokens, tokens)
        np.testing.assert_array_equal(sets.offsets, offsets)
    np.savez(tmp_path / "half.npz", tokens=tokens)
    with pytest.raises(InputError, match=r"half\.npz: token sets: missing offsets"):
        read_token_sets(tmp_path / "half.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"needs tokens\.npy and offsets\.npy"):
        read_token_sets(tmp_path / "empty")
    with pytest.raises(DimensionError, match="does not match 32"):
        read_token_sets(tmp_path / "docs.npz", dim=32)


def test_pooling_unit_tokens_keeps_unit_length(multivec) -> None:
    tokens, offsets = multivec(30, 16, seed=6)
    pooled = pool_tokens(TokenSets(tokens, offsets), 2)
    np.testing.assert_allclose(np.linalg.norm(pooled.tokens, axis=1), 1.0, rtol=1e-5)
    # The direction is the cluster mean's: a set of two pools into their normalised mean.
    pair = TokenSets(tokens[:2], np.array([0, 2]))
    mean = tokens[:2].mean(axis=0)
    np.testing.assert_allclose(
        pool_tokens(pair, 2).tokens[0], mean / np.linalg.norm(mean), rtol=1e-5
    )


def test_rerank_skips_missing_candidates_anywhere(corpus) -> None:
    docs, queries, _, _ = corpus
    index = build_index(docs, SPEC.replace("muvera:", "muvera:tokens=f32,"), "ip")
    sets = TokenSets(*queries)
    dense = np.tile(np.arange(40, dtype=np.int64), (sets.count, 1))
    holes = np.full((sets.count, 80), -1, np.int64)
    holes[:, 1::2] = dense  # -1 before every candidate, none after the last
    holes[:, -1] = -1
    holes[:, -2] = dense[:, -1]
    want = index.rerank(sets, dense, 10)
    got = index.rerank(sets, holes, 10)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # Exact Chamfer of the best candidate, in float64.
    best = int(want[0][0, 0])
    sims = sets[0].astype(np.float64) @ docs[0][docs[1][best] : docs[1][best + 1]].T
    assert want[1][0, 0] == pytest.approx(sims.max(axis=1).sum(), rel=1e-5)
