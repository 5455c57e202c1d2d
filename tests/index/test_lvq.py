"""LVQ invariants, tested as properties over several data shapes."""

from __future__ import annotations

import numpy as np
import pytest

from glint.index.kernels.distances import residual_score, score
from glint.index.lvq import encode_lvq
from glint.index.vecstore import VectorStore

STORAGES = [(8, 0), (4, 0), (4, 4), (4, 8)]


def skewed(n: int, d: int, seed: int) -> np.ndarray:
    """Real-like data: non-centred, per-vector scales differ, heavy-ish tails."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(2.0, 1.0, d)
    scale = rng.lognormal(0.0, 0.7, (n, 1))
    return (offset + scale * rng.standard_t(5, (n, d))).astype(np.float32)


@pytest.mark.parametrize(("bits", "residual_bits"), STORAGES)
@pytest.mark.parametrize(("n", "d", "seed"), [(500, 33, 0), (300, 128, 1), (50, 1, 2)])
def test_decode_error_within_half_a_step(
    bits: int, residual_bits: int, n: int, d: int, seed: int
) -> None:
    x = skewed(n, d, seed)
    codes = encode_lvq(x, bits, residual_bits)
    delta, _ = codes.constants()
    slack = 1e-5 * (1 + np.abs(x - codes.mean).max(axis=1))
    err = np.abs(codes.decode() - x).max(axis=1)
    assert (err <= delta / 2 + slack).all()
    if residual_bits:
        step = delta / ((1 << residual_bits) - 1)
        err2 = np.abs(codes.decode(residual=True) - x).max(axis=1)
        assert (err2 <= step / 2 + slack).all()
        if d >= 8:  # with 1-2 coordinates both sit on the grid ends already
            assert err2.mean() < err.mean()


def test_constants_are_float16_exact_and_codes_in_range() -> None:
    codes = encode_lvq(skewed(200, 40, 3), 4, 8)
    delta, low = codes.constants()
    np.testing.assert_array_equal(delta, delta.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(low, low.astype(np.float16).astype(np.float32))
    primary = codes.primary_codes()
    assert primary.shape == (200, 40) and primary.max() <= 15
    assert codes.records.shape == (200, 20 + 4)


@pytest.mark.parametrize("bits", [4, 8])
def test_lvq_beats_a_global_scalar_quantizer(bits: int) -> None:
    x = skewed(2000, 64, 4)
    lvq_err = np.mean((encode_lvq(x, bits).decode() - x) ** 2)
    lo, hi = x.min(), x.max()
    step = (hi - lo) / ((1 << bits) - 1)
    global_err = np.mean((np.rint((x - lo) / step) * step + lo - x) ** 2)
    assert lvq_err < 0.5 * global_err


@pytest.mark.parametrize(("bits", "residual_bits"), STORAGES)
def test_constant_and_zero_vectors(bits: int, residual_bits: int) -> None:
    x = np.zeros((4, 16), np.float32)
    x[1] = 3.25
    x[2] = -7.0
    x[3, 5] = 1.0
    codes = encode_lvq(x, bits, residual_bits)
    for decoded in (codes.decode(), codes.decode(residual=True)):
        assert np.isfinite(decoded).all()
        np.testing.assert_allclose(decoded, x, atol=0.1)


@pytest.mark.parametrize("storage", ["f32", "f16", "lvq8", "lvq4", "lvq4x4", "lvq4x8"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("dim", [24, 25])
def test_kernel_matches_decode_then_score(storage: str, metric: str, dim: int) -> None:
    x = skewed(64, dim, 5)
    queries = skewed(3, dim, 6)
    store = VectorStore.encode(x, storage)  # type: ignore[arg-type]
    if storage.startswith("lvq"):
        bits, residual_bits = int(storage[3]), int(storage[5:] or 0)
        decoded = encode_lvq(x, bits, residual_bits).decode()
        decoded_fine = encode_lvq(x, bits, residual_bits).decode(residual=True)
    else:
        decoded = decoded_fine = x.astype(np.float16).astype(np.float32) if storage == "f16" else x
    prepared = store.prepare(queries, metric)  # type: ignore[arg-type]
    kind, fdata, hdata, codes, lut = store.kernel_args()
    for qi, q in enumerate(queries):
        for i in (0, 17, 63):
            got = score(
                kind,
                metric == "l2",
                prepared.q[qi],
                prepared.q8[qi],
                prepared.qscale[qi],
                prepared.qsum[qi],
                prepared.qmu[qi],
                fdata,
                hdata,
                codes,
                lut,
                i,
            )
            want = -np.sum((q - decoded[i]) ** 2) if metric == "l2" else float(q @ decoded[i])
            assert got == pytest.approx(want, rel=1e-4, abs=1e-3)
            if store.has_residual:
                fine = residual_score(
                    metric == "l2",
                    prepared.q[qi],
                    prepared.qsum[qi],
                    prepared.qmu[qi],
                    kind,
                    codes,
                    store.residual_array(),
                    store.residual_bits,
                    lut,
                    i,
                )
                want = (
                    -np.sum((q - decoded_fine[i]) ** 2)
                    if metric == "l2"
                    else float(q @ decoded_fine[i])
                )
                assert fine == pytest.approx(want, rel=1e-4, abs=1e-3)


def test_values_beyond_float16_range_are_refused() -> None:
    from glint.index import InputError

    x = np.zeros((3, 4), np.float32)
    x[0, 0] = 1e6
    with pytest.raises(InputError, match="exceed LVQ's float16 range"):
        encode_lvq(x, 8)
