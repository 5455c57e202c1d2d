"""A smoke run of ``glint-bench multivec`` on tiny synthetic token sets (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from glint.bench.cli import main
from glint.bench.multivec import Truth, _stored_tokens, markdown, recall_at_10
from glint.index import TokenSets, build_index
from glint.index.multivec import pool_tokens
from glint.index.vecstore import VectorStore

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAVE_PEER = importlib.util.find_spec("muvera_fde") is not None


def _dataset(root: Path, multivec, multivec_queries, chamfer) -> Path:
    docs = multivec(400, 32, seed=51)
    queries = multivec_queries(docs, 20, seed=52)
    gt, _ = chamfer(docs, queries, 20)
    root.mkdir()
    np.save(root / "doc_tokens.npy", docs[0])
    np.save(root / "doc_offsets.npy", docs[1])
    np.save(root / "query_tokens.npy", queries[0])
    np.save(root / "query_offsets.npy", queries[1])
    np.save(root / "gt.npy", gt.astype(np.int32))
    (root / "meta.json").write_text(json.dumps({"dataset": "tiny-multivec"}))
    return root


def test_recall_at_10_counts_overlap() -> None:
    gt = np.arange(20).reshape(2, 10)
    found = np.array([np.arange(10), [10, 11, 12, 13, 14, 99, 98, 97, 96, 95]])
    assert recall_at_10(found, gt) == pytest.approx((1.0 + 0.5) / 2)
    # Only the first 10 columns of a wider ground truth count.
    wide = np.hstack([gt, gt + 100])
    assert recall_at_10(found, wide) == pytest.approx((1.0 + 0.5) / 2)


def test_truth_judges_misses_by_their_exact_scores(multivec, multivec_queries, chamfer) -> None:
    raw = multivec(120, 12, seed=54)
    docs = TokenSets(*raw)
    queries = TokenSets(*multivec_queries(raw, 6, seed=55))
    gt, scores = chamfer(raw, (queries.tokens, queries.offsets), 40)
    truth = Truth.of(docs, queries, gt, VectorStore.encode(docs.tokens, "f32"))
    np.testing.assert_allclose(truth.top10_score, scores[:, :10].sum(axis=1), rtol=1e-5)

    exact = truth.quality(queries, gt[:, :10])
    assert exact["score_share"] == pytest.approx(1.0, abs=1e-6)
    assert exact["within_top20"] == 1.0
    # The exact 11th to 20th: all within the top 20, scoring what the reference says they do.
    next10 = truth.quality(queries, gt[:, 10:20])
    assert next10["within_top20"] == 1.0
    share = scores[:, 10:20].sum() / scores[:, :10].sum()
    assert next10["score_share"] == pytest.approx(share, rel=1e-5)
    assert next10["score_share"] < 1.0
    # Half from the top 10, half from ranks 30 to 34.
    mixed = np.hstack([gt[:, :5], gt[:, 30:35]])
    assert truth.quality(queries, mixed)["within_top20"] == 0.5
    # Missing (-1) and repeated ids count as nothing: the top 5 alone, then the top 5 twice.
    top5 = truth.quality(queries, np.hstack([gt[:, :5], np.full((6, 5), -1)]))
    twice = truth.quality(queries, np.hstack([gt[:, :5], gt[:, :5]]))
    assert top5 == twice and top5["within_top20"] == 0.5
    assert top5["score_share"] == pytest.approx(scores[:, :5].sum() / scores[:, :10].sum())
    # A ground truth narrower than 20 columns gives the score share only.
    narrow = Truth.of(docs, queries, gt[:, :10], truth.tokens)
    assert set(narrow.quality(queries, gt[:, :10])) == {"score_share"}
    assert narrow.score_shift(queries, docs) == {}

    # Scores over the very tokens: no drop; the gap is the reference's.
    same = truth.score_shift(queries, docs)
    assert same["drop"] == pytest.approx(0.0, abs=1e-6)
    assert same["drop_spread"] == pytest.approx(0.0, abs=1e-6)
    gap = np.median((scores[:, 9] - scores[:, 19]) / scores[:, 9])
    assert same["gap_10_20"] == pytest.approx(gap, rel=1e-4)
    # Over pooled tokens the scores move, and not all by the same amount.
    pooled = truth.score_shift(queries, pool_tokens(docs, 2))
    assert pooled["drop_spread"] > 0.0 and pooled["gap_10_20"] == same["gap_10_20"]
    # A query with fewer than 20 exact results is left out.
    short = gt.copy()
    short[0, 15:] = -1
    partial = Truth.of(docs, queries, short, truth.tokens).score_shift(
        queries, pool_tokens(docs, 2)
    )
    rest = Truth.of(docs, queries.slice(1, 6), gt[1:], truth.tokens)
    assert partial == rest.score_shift(queries.slice(1, 6), pool_tokens(docs, 2))
    fewer = pool_tokens(docs, 2)
    expected = np.median([_drops(docs, fewer, queries[i], gt[i, :20]) for i in range(6)])
    assert pooled["drop"] == pytest.approx(expected, rel=1e-4)


def _drops(docs: TokenSets, fewer: TokenSets, query: np.ndarray, top: np.ndarray) -> list[float]:
    """Relative Chamfer score drops of the ``top`` documents, ``fewer`` tokens against all."""
    q = query.astype(np.float64)
    out = []
    for doc in top:
        full = (q @ docs[doc].T.astype(np.float64)).max(axis=1).sum()
        pooled = (q @ fewer[doc].T.astype(np.float64)).max(axis=1).sum()
        out.append((full - pooled) / full)
    return out


@pytest.mark.slow
def test_multivec_run_and_report(tmp_path: Path, multivec, multivec_queries, chamfer) -> None:
    data = _dataset(tmp_path / "tiny", multivec, multivec_queries, chamfer)
    out, md = tmp_path / "mv.json", tmp_path / "mv.md"
    argv = [
        "multivec", "--dataset", str(data), "--out", str(out), "--md", str(md),
        "--spec", "muvera:k_sim=3,dim_proj=8,r_reps=6,inner=(hnsw:m=8,storage=lvq8)",
        "--spec", "muvera:k_sim=3,dim_proj=8,r_reps=6,pool_factor=2,inner=(flat)",
        "--candidates", "10,40,400", "--memory-candidates", "40", "--seeds", "1,2",
        "--k-sim", "3", "--dim-proj", "8", "--r-reps", "6", "--repeats", "1", "--nq-exact", "10",
    ]  # fmt: skip
    if HAVE_MATPLOTLIB:
        argv += ["--png", str(tmp_path / "mv.png")]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    # Brute force is exact; the full candidate list re-ranked exactly is exact too.
    assert results["exact"]["recall_at_10"] == 1.0
    assert results["fde_compare"]["glint"]["recall_mean"][-1] == 1.0
    if HAVE_PEER:
        assert results["fde_compare"]["muvera-fde"]["recall_mean"][-1] == 1.0
        assert [p["candidates"] for p in results["peer"]["points"]] == [10, 40, 400]
    hnsw, pooled = results["glint"]
    assert hnsw["points"][0]["params"] == {"candidates": 10, "ef_search": 10}
    assert hnsw["points"][-1]["recall_at_10"] >= 0.95
    assert pooled["memory"]["stored_tokens"] < hnsw["memory"]["stored_tokens"]
    # Brute force over the stored tokens: LVQ-8 tokens rank almost as float32 ones do.
    assert hnsw["stored_exact"]["queries"] == 10
    assert hnsw["stored_exact"]["recall_at_10"] >= 0.95
    assert 0.0 < pooled["stored_exact"]["recall_at_10"] <= 1.0
    for point in hnsw["points"] + pooled["points"]:
        assert 0.0 < point["score_share"] <= 1.0 + 1e-6
        assert point["recall_at_10"] <= point["within_top20"] <= 1.0
    assert hnsw["points"][-1]["score_share"] >= 0.99
    if HAVE_PEER:
        assert results["peer"]["points"][-1]["score_share"] == pytest.approx(1.0, abs=1e-6)
    text = md.read_text()
    assert text == markdown(results)
    assert "FDE quality at equal candidates" in text and "Memory per document" in text
    assert "exact over stored tokens" in text and "score share" in text
    assert set(pooled["stored_exact"]["score_shift"]) == {"drop", "drop_spread", "gap_10_20"}
    assert "spread of the drops within a query" in text
    if HAVE_MATPLOTLIB:
        assert (tmp_path / "mv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stored_tokens_decode_what_the_index_holds(multivec) -> None:
    docs = TokenSets(*multivec(60, 16, seed=53))
    spec = "muvera:k_sim=2,dim_proj=8,r_reps=2,pool_factor=2,inner=(flat)"
    exact = build_index(docs, spec.replace("muvera:", "muvera:tokens=f32,"), "ip")
    stored = _stored_tokens(exact)
    pooled = pool_tokens(docs, 2)
    np.testing.assert_array_equal(stored.offsets, pooled.offsets)
    np.testing.assert_array_equal(stored.tokens, pooled.tokens)
    # LVQ-8 tokens decode (mean added back) to within their quantisation step.
    lvq = build_index(docs, spec.replace("muvera:", "muvera:tokens=lvq8,"), "ip")
    np.testing.assert_allclose(_stored_tokens(lvq).tokens, pooled.tokens, atol=0.02)
