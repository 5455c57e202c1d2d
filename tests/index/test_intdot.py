"""The integer LVQ kernels (AVX-512 VNNI; AVX2 for 4-bit codes): exact integer sums, the query
layout, and graph search that ranks as the float kernels do."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from glint.index import build_index
from glint.index.groundtruth import recall_at_k
from glint.index.kernels.distances import LVQ4, LVQ4_INT, LVQ8, LVQ8_INT, score
from glint.index.kernels.intdot import HAS_AVX2, HAS_VNNI
from glint.index.lvq import encode_lvq
from glint.index.vecstore import VectorStore

needs_vnni = pytest.mark.skipif(not HAS_VNNI, reason="this CPU has no AVX-512 VNNI")
needs_int4 = pytest.mark.skipif(not (HAS_VNNI or HAS_AVX2), reason="this CPU has no AVX2")


def _data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0.3, 1.0, d) + rng.standard_t(5, (n, d))).astype(np.float32)


@pytest.mark.parametrize("storage", ["lvq8", "lvq4"])
@pytest.mark.parametrize("dim", [7, 64, 200, 257])
def test_quantized_query_layout_matches_the_codes(storage: str, dim: int) -> None:
    x = _data(20, dim, 0)
    q = _data(3, dim, 1)
    store = VectorStore.encode(x, storage)  # type: ignore[arg-type]
    prepared = store.prepare(q, "ip", LVQ8_INT if storage == "lvq8" else LVQ4_INT)
    code_bytes = store.codes.shape[1] - 4  # type: ignore[union-attr]
    assert prepared.q8.shape == (3, code_bytes if storage == "lvq8" else 2 * code_bytes)
    scale = prepared.qscale
    levels = np.rint(q / scale[:, None]).astype(np.int64)
    assert np.abs(levels).max() == 127  # the largest |value| of each query maps to ±127
    assert np.abs(q - scale[:, None] * prepared.q8[:, :dim]).max() <= scale.max() * 0.5001
    assert not prepared.q8[:, dim:].any()  # padding (odd dim, 4-bit) is zero
    np.testing.assert_allclose(prepared.qsum, q.sum(axis=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(prepared.qmu, q @ store.mean, rtol=1e-5, atol=1e-4)
    # the dot product with the unpacked codes, through the layout, is the same
    unpacked = encode_lvq(x, 8 if storage == "lvq8" else 4).primary_codes().astype(np.int64)
    want = unpacked @ prepared.q8[:, :dim].T.astype(np.int64)
    if storage == "lvq4":
        packed = store.codes[:, :code_bytes].astype(np.int64)  # type: ignore[index]
        low, high = packed & 15, packed >> 4
        got = low @ prepared.q8[:, :code_bytes].T.astype(np.int64)
        got += high @ prepared.q8[:, code_bytes:].T.astype(np.int64)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("storage", "kind"),
    [
        pytest.param("lvq8", LVQ8_INT, marks=needs_vnni),
        pytest.param("lvq4", LVQ4_INT, marks=needs_int4),
    ],
)
@pytest.mark.parametrize("dim", [24, 25, 128, 200, 257, 384])
def test_integer_score_is_the_exact_integer_sum(storage: str, kind: int, dim: int) -> None:
    # dims below, at and across the 64-byte blocks, odd ones included (4-bit tail nibbles)
    x = _data(70, dim, 3)
    queries = _data(4, dim, 4)
    store = VectorStore.encode(x, storage)  # type: ignore[arg-type]
    assert store.search_kind("ip") == kind
    assert store.search_kind("l2") == store.kind  # no integer form for l2
    prepared = store.prepare(queries, "ip", kind)
    _, fdata, hdata, codes, lut = store.kernel_args()
    lvq = encode_lvq(x, 8 if storage == "lvq8" else 4)
    delta, low = lvq.constants()
    unpacked = lvq.primary_codes().astype(np.int64)
    levels = prepared.q8[:, :dim].astype(np.int64)
    for qi in range(len(queries)):
        for i in (0, 33, 69):
            got = score(
                kind, False, prepared.q[qi], prepared.q8[qi], prepared.qscale[qi],
                prepared.qsum[qi], prepared.qmu[qi], fdata, hdata, codes, lut, i,
            )  # fmt: skip
            dot = int(unpacked[i] @ levels[qi])
            want = (
                delta[i] * prepared.qscale[qi] * dot + low[i] * prepared.qsum[qi] + prepared.qmu[qi]
            )
            assert got == pytest.approx(float(want), rel=1e-5, abs=1e-4)
            # and within the 8-bit query's rounding of the float kernel's score
            float_kind = LVQ8 if storage == "lvq8" else LVQ4
            exact = score(
                float_kind, False, prepared.q[qi], prepared.q8[qi], prepared.qscale[qi],
                prepared.qsum[qi], prepared.qmu[qi], fdata, hdata, codes, lut, i,
            )  # fmt: skip
            bound = delta[i] * prepared.qscale[qi] / 2 * unpacked[i].sum() + 1e-3
            assert abs(got - exact) <= bound


@pytest.mark.parametrize(
    "storage",
    [
        pytest.param("lvq8", marks=needs_vnni),
        pytest.param("lvq4", marks=needs_int4),
        pytest.param("lvq4x8", marks=needs_int4),
    ],
)
@pytest.mark.parametrize("metric", ["ip", "cos"])
def test_graph_search_on_integers_ranks_as_the_float_kernel(storage: str, metric: str) -> None:
    x = _data(3000, 96, 5)
    queries = _data(100, 96, 6)
    index = build_index(x, f"hnsw:m=16,storage={storage}", metric=metric, threads=1)
    assert index._search_kind in (LVQ8_INT, LVQ4_INT)
    got = index.search(queries, k=10, ef_search=64)
    float_index = build_index(x, f"hnsw:m=16,storage={storage}", metric=metric, threads=1)
    float_index._search_kind = float_index.store.kind  # the float kernels, same graph
    want = float_index.search(queries, k=10, ef_search=64)
    base = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cos" else x
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True) if metric == "cos" else queries
    truth = np.argsort(-(qn @ base.T), axis=1)[:, :10]
    assert recall_at_k(got.ids, truth, 10) >= recall_at_k(want.ids, truth, 10) - 0.01
    assert recall_at_k(got.ids, want.ids, 10) >= 0.97
    if storage == "lvq8":
        # no residual: the results are re-scored on the float query, so scores are the float
        # kernel's wherever the two found the same vector
        same = got.ids == want.ids
        np.testing.assert_allclose(got.scores[same], want.scores[same], rtol=1e-5)
    assert np.all(np.diff(got.scores, axis=1) <= 1e-6)  # best first


def test_no_vnni_setting_keeps_the_float_kernels(tmp_path) -> None:
    # and the integer kernels still compile and sum exactly without the instruction (a CPU
    # without VNNI must be able to compile code that names them)
    code = (
        "import numpy as np\n"
        "from numba import njit\n"
        "from glint.index.kernels.intdot import HAS_AVX2, HAS_VNNI, dot_u4_i8, dot_u8_i8\n"
        "from glint.index.vecstore import VectorStore\n"
        "s = VectorStore.encode(np.ones((4, 8), np.float32), 'lvq8')\n"
        "s4 = VectorStore.encode(np.ones((4, 8), np.float32), 'lvq4')\n"
        "f8 = njit(lambda c, q: dot_u8_i8(c, q, 3))\n"
        "f4 = njit(lambda c, q: dot_u4_i8(c, q, 3, 192))\n"
        "rng = np.random.default_rng(0)\n"
        "c = rng.integers(0, 256, 192, dtype=np.uint8)\n"
        "q = rng.integers(-127, 128, 384, dtype=np.int8)\n"
        "w8 = int(c.astype(np.int64) @ q[:192])\n"
        "w4 = int((c & 15).astype(np.int64) @ q[:192] + (c >> 4).astype(np.int64) @ q[192:])\n"
        "print(HAS_VNNI, s.search_kind('ip') == s.kind, s4.search_kind('ip') == s4.kind,\n"
        "      f8(c, q[:192]) == w8, f4(c, q) == w4)\n"
    )
    env = {**os.environ, "GLINT_NO_VNNI": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True", "True", "True", "True"]
