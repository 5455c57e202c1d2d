"""All-zero vectors under ``cos``: no direction, so no cosine. Refused as queries (every score
would tie at 0 and the hits be arbitrary) and, by the same rule, as vectors to index
(issue 15, item 10b)."""

from __future__ import annotations

import numpy as np
import pytest

from glint.index import InputError, TokenSets, build_index
from glint.index.metrics import normalize_rows

DIM = 8


@pytest.mark.parametrize("spec", ["flat", "hnsw:m=8", "ivfpq:nlist=4,m=4"])
def test_a_zero_query_is_refused_naming_its_row(data, spec: str) -> None:
    index = build_index(data(300, DIM), spec, "cos")
    queries = data(3, DIM, seed=1)
    queries[2] = 0.0
    with pytest.raises(InputError, match=r"^queries: row 2 is all zeros: the cos metric compares"):
        index.search(queries, 5)
    index.search(queries[:2], 5)  # the others are fine
    for metric in ("ip", "l2"):  # zero is a fine query there
        assert build_index(data(50, DIM), "flat", metric).search(queries[2:], 3).ids.shape == (
            1,
            3,
        )


def test_a_zero_vector_is_refused_at_build(data) -> None:
    """The rule is the same at build: cos is undefined for a zero vector (as Elasticsearch
    refuses them for its cosine vectors); a zero row would otherwise score 0 against every
    query, hiding broken input."""
    base = data(100, DIM)
    base[57] = 0.0
    with pytest.raises(InputError, match=r"^vectors: row 57 is all zeros"):
        build_index(base, "flat", "cos")
    assert build_index(base, "flat", "ip").count == 100


def test_multivector_zero_tokens_under_cos(data) -> None:
    tokens = data(30, DIM)
    sets = TokenSets(tokens, np.arange(0, 31, 3, dtype=np.int64))
    index = build_index(sets, "muvera:r_reps=2,inner=(flat)", "cos")
    query = data(4, DIM, seed=3)
    query[1] = 0.0
    with pytest.raises(InputError, match=r"^tokens of the queries: row 1 is all zeros"):
        index.search([query], 3)


def test_tiny_vectors_have_a_direction() -> None:
    """Norms in float64: values whose squares underflow float32 are normalised, not left at
    a zero norm (they came out ~1e10 long before)."""
    x = np.array([[1e-30, 1e-30], [3e38, -3e38], [3.0, 4.0]], np.float32)
    out = normalize_rows(x, what="vectors")
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.allclose(out[2], [0.6, 0.8])
    kept = normalize_rows(np.zeros((2, 3), np.float32), zeros="keep")
    assert not kept.any()
    with pytest.raises(InputError, match=r"^queries: row 0 is all zeros"):
        normalize_rows(np.zeros((1, 3), np.float32), what="queries")
