"""Properties of the MUVERA fixed dimensional encoding (see docs/design-muvera.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from glint.index import TokenSets
from glint.index.fde import FDEEncoder, FDEParams
from glint.index.multivec import exact_maxsim, maxsim_scores


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize(
    ("k_sim", "dim_proj", "r_reps", "final_dim", "dim", "expected"),
    [
        (4, 16, 10, 0, 32, 10 * 16 * 16),
        (3, 8, 2, 0, 32, 2 * 8 * 8),
        (0, 0, 1, 0, 32, 32),
        (2, 0, 3, 0, 20, 3 * 4 * 20),
        (5, 16, 20, 1024, 32, 1024),
    ],
)
def test_output_dimension(k_sim, dim_proj, r_reps, final_dim, dim, expected, multivec) -> None:
    tokens, offsets = multivec(7, dim, seed=1)
    enc = FDEEncoder(FDEParams(dim, k_sim, dim_proj, r_reps, final_dim, seed=3))
    assert enc.params.out_dim == expected
    assert enc.encode_queries(tokens, offsets).shape == (7, expected)
    assert enc.encode_documents(tokens, offsets).shape == (7, expected)


def test_no_partitions_no_projection_gives_sum_and_mean(multivec) -> None:
    tokens, offsets = multivec(9, 16, seed=2)
    enc = FDEEncoder(FDEParams(16, k_sim=0, dim_proj=0, r_reps=1))
    queries = enc.encode_queries(tokens, offsets)
    docs = enc.encode_documents(tokens, offsets)
    for i in range(9):
        own = tokens[offsets[i] : offsets[i + 1]]
        np.testing.assert_allclose(queries[i], own.sum(axis=0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(docs[i], own.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_query_blocks_sum_to_the_projected_token_sum(multivec) -> None:
    tokens, offsets = multivec(6, 32, seed=3)
    p = FDEParams(32, k_sim=3, dim_proj=8, r_reps=4, seed=9)
    enc = FDEEncoder(p)
    fde = enc.encode_queries(tokens, offsets).reshape(6, p.r_reps, 1 << p.k_sim, p.dim_proj)
    assert enc.projection is not None
    for i in range(6):
        total = tokens[offsets[i] : offsets[i + 1]].sum(axis=0)
        for r in range(p.r_reps):
            want = total @ enc.projection[:, r * p.dim_proj : (r + 1) * p.dim_proj]
            np.testing.assert_allclose(fde[i, r].sum(axis=0), want, rtol=1e-4, atol=1e-4)


def test_gray_code_partitions_differ_in_one_sign() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4000, 16)).astype(np.float32)
    enc = FDEEncoder(FDEParams(16, k_sim=4, dim_proj=4, r_reps=2, seed=1))
    signs, parts = enc._partitions(x)
    # The partition's own sign pattern (the Gray code of its index) is the token's signs.
    np.testing.assert_array_equal(parts ^ (parts >> 1), signs.astype(np.int32))
    # Every partition is reached, and neighbouring indices differ in exactly one sign.
    assert set(np.unique(parts)) == set(range(16))
    gray = np.arange(16) ^ (np.arange(16) >> 1)
    assert all(bin(int(a ^ b)).count("1") == 1 for a, b in itertools.pairwise(gray))


def test_filling_changes_only_empty_document_blocks(multivec) -> None:
    tokens, offsets = multivec(40, 32, seed=5, mean_tokens=4)
    p = FDEParams(32, k_sim=5, dim_proj=8, r_reps=3, seed=2)
    enc = FDEEncoder(p)
    filled = enc.encode_documents(tokens, offsets).reshape(40, p.r_reps, 32, 8)
    plain = enc.encode_documents(tokens, offsets, fill_empty=False).reshape(40, p.r_reps, 32, 8)
    _, parts = enc._partitions(tokens)
    changed_any = False
    for i in range(40):
        for r in range(p.r_reps):
            occupied = set(parts[offsets[i] : offsets[i + 1], r].tolist())
            for b in range(32):
                if b in occupied:
                    np.testing.assert_array_equal(filled[i, r, b], plain[i, r, b])
                else:
                    assert not plain[i, r, b].any()
                    assert filled[i, r, b].any()
                    changed_any = True
    assert changed_any
    # Queries are never filled: an empty partition of a query stays zero.
    queries = enc.encode_queries(tokens, offsets).reshape(40, p.r_reps, 32, 8)
    assert (np.abs(queries).sum(axis=3) == 0).any()


def test_fill_takes_the_token_nearest_in_hamming_distance() -> None:
    # One token: every empty partition gets that token's projection.
    enc = FDEEncoder(FDEParams(8, k_sim=3, dim_proj=4, r_reps=1, seed=0))
    token = np.ones((1, 8), np.float32)
    doc = enc.encode_documents(token, np.array([0, 1])).reshape(8, 4)
    assert enc.projection is not None
    for b in range(8):
        np.testing.assert_allclose(doc[b], token[0] @ enc.projection, rtol=1e-6)
    # Two tokens with opposite signs: each empty partition takes the one whose sign
    # pattern is nearer to the partition's Gray code.
    rng = np.random.default_rng(1)
    two = rng.standard_normal((1, 8)).astype(np.float32)
    pair = np.concatenate([two, -two])
    signs, parts = enc._partitions(pair)
    doc = enc.encode_documents(pair, np.array([0, 2])).reshape(8, 4)
    proj = pair @ enc.projection
    for b in range(8):
        if b in parts[:, 0]:
            continue
        pattern = b ^ (b >> 1)
        dist = [bin(int(s) ^ pattern).count("1") for s in signs[:, 0]]
        np.testing.assert_allclose(doc[b], proj[int(np.argmin(dist))], rtol=1e-6)


def test_same_seed_same_bytes_other_seed_other_bytes(multivec) -> None:
    tokens, offsets = multivec(20, 32, seed=6)
    a = FDEEncoder(FDEParams(32, 4, 8, 5, 256, seed=11)).encode_documents(tokens, offsets)
    b = FDEEncoder(FDEParams(32, 4, 8, 5, 256, seed=11)).encode_documents(tokens, offsets)
    c = FDEEncoder(FDEParams(32, 4, 8, 5, 256, seed=12)).encode_documents(tokens, offsets)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    # Encoding with 2 threads, or from stored matrices, changes nothing.
    enc = FDEEncoder(FDEParams(32, 4, 8, 5, 256, seed=11))
    again = FDEEncoder(enc.params, enc.arrays())
    assert again.encode_documents(tokens, offsets, threads=2).tobytes() == a.tobytes()


def test_count_sketch_keeps_inner_products_unbiased(multivec) -> None:
    tokens, offsets = multivec(60, 32, seed=7)
    q = (tokens[:10], np.array([0, 10]))
    full = FDEEncoder(FDEParams(32, 3, 8, 20, 0, seed=1))
    exact = full.encode_documents(tokens, offsets) @ full.encode_queries(*q)[0]
    # The sketch (its buckets and signs, from seeds 100...) averaged over many draws gives
    # the unsketched inner products back; the projections stay those of seed 1.
    draws = []
    for seed in range(100, 140):
        sketch = FDEEncoder.draw(FDEParams(32, 3, 8, 20, 512, seed=seed))
        arrays = {**full.arrays(), **{k: v for k, v in sketch.items() if k.startswith("sketch")}}
        small = FDEEncoder(FDEParams(32, 3, 8, 20, 512, seed=1), arrays)
        draws.append(small.encode_documents(tokens, offsets) @ small.encode_queries(*q)[0])
    mean = np.mean(draws, axis=0)
    assert np.corrcoef(exact, mean)[0, 1] > 0.98
    assert abs(float(mean.sum() / exact.sum()) - 1.0) < 0.05


def test_fde_inner_product_tracks_maxsim_better_with_more_repetitions(multivec) -> None:
    doc_tokens, doc_offsets = multivec(400, 32, seed=8)
    q_tokens, q_offsets = multivec(12, 32, seed=9)
    docs = TokenSets(doc_tokens, doc_offsets)
    correlations = []
    for reps in (1, 4, 16):
        enc = FDEEncoder(FDEParams(32, k_sim=3, dim_proj=16, r_reps=reps, seed=5))
        doc_fde = enc.encode_documents(doc_tokens, doc_offsets)
        q_fde = enc.encode_queries(q_tokens, q_offsets)
        rho = [
            _spearman(
                doc_fde @ q_fde[i], maxsim_scores(docs, q_tokens[q_offsets[i] : q_offsets[i + 1]])
            )
            for i in range(12)
        ]
        correlations.append(float(np.mean(rho)))
    assert correlations[0] < correlations[1] < correlations[2]
    assert correlations[2] > 0.6


def test_exact_maxsim_matches_the_float64_reference(multivec, chamfer) -> None:
    docs = multivec(300, 24, seed=10)
    queries = multivec(15, 24, seed=11)
    rows, scores = exact_maxsim(TokenSets(*docs), TokenSets(*queries), 10, threads=2)
    want_rows, want_scores = chamfer(docs, queries, 10)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


def test_projection_is_a_signed_sketch_with_orthogonal_columns() -> None:
    enc = FDEEncoder(FDEParams(64, k_sim=2, dim_proj=16, r_reps=3, seed=4))
    assert enc.projection is not None
    scaled = enc.projection * np.sqrt(16)
    np.testing.assert_array_equal(np.abs(scaled), 1.0)
    for r in range(3):
        block = scaled[:, r * 16 : (r + 1) * 16]
        np.testing.assert_allclose(block.T @ block, 64 * np.eye(16))
