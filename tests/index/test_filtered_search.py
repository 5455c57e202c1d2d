"""Filtered search in every kind, against exact search over the rows the filter allows.

``flat`` is exact over the allowed rows; ``hnsw`` (each filter arm: the exact scan of the
allowed rows, the graph admitting only them, and the planner's choice) keeps recall@10 at
0.9 or more against the exact filtered truth at selectivities from half to a hundredth of
the rows and under a filter correlated with the data (a field holding each vector's
cluster); ``ivfpq`` and ``muvera`` return only allowed points. No kind ever returns fewer
than ``min(k, allowed)`` points, nor a point twice.

The numba search of ``hnsw`` is compiled per storage, metric and arm, at some seconds each,
so the quick tests use one index (f32 storage, l2); the compressed storages are ``slow``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import glint.index.hnsw
from glint.index import FormatError, build_index, load_index
from glint.index.filters import FilterError

from testkit import chamfer_scores, exact_scores, queries_from, recall, token_sets

N, DIM, CLUSTERS, NQ, K = 4000, 32, 32, 30, 10
HNSW = "hnsw:m=16,ef_construction=100"
ARMS = ["scan", "graph", "auto"]


# -- data ----------------------------------------------------------------------------------------


class Data:
    """Clustered vectors with a low intrinsic dimension (as ``testkit.clustered``), each
    row's cluster known, queries drawn from the same clusters, and payloads:

    - ``u``: a uniform integer in [0, 100), independent of the vectors (selectivity);
    - ``cluster``: the row's cluster (a filter correlated with the vectors);
    - ``tag``: a list of 0 to 2 keywords, ``even`` or ``odd`` with the row number."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.basis = rng.standard_normal((12, DIM)).astype(np.float32)
        self.centers = rng.standard_normal((CLUSTERS, 12)).astype(np.float32) * 3.0
        self.labels = rng.integers(0, CLUSTERS, N)
        self.base = self.draw(self.labels, seed=seed + 1)
        self.queries = self.draw(rng.integers(0, CLUSTERS, NQ), seed=seed + 2)
        self.u = rng.integers(0, 100, N)
        self.ids = rng.permutation(N).astype(np.int64) * 7919 + 13  # user ids, not row order
        self.payloads = [
            {
                "u": int(self.u[row]),
                "cluster": int(self.labels[row]),
                "tag": ["even" if row % 2 == 0 else "odd"] * int(rng.integers(0, 3)),
            }
            for row in range(N)
        ]

    def draw(self, labels: np.ndarray, *, seed: int) -> np.ndarray:
        """Points of clusters ``labels`` (one per label)."""
        rng = np.random.default_rng(seed)
        latent = self.centers[labels] + rng.standard_normal((len(labels), 12))
        noise = 0.1 * rng.standard_normal((len(labels), DIM))
        return np.ascontiguousarray(latent @ self.basis + noise, dtype=np.float32)


PAYLOAD_INDEX = {"u": "integer", "cluster": "integer", "tag": "keyword"}

# name -> (filter, the allowed rows as a function of the data)
SELECTIVE: dict[str, tuple[dict[str, Any], Callable[[Data], np.ndarray]]] = {
    "50%": ({"must": [{"key": "u", "range": {"lt": 50}}]}, lambda d: d.u < 50),
    "10%": (
        {"must": [{"key": "u", "range": {"gte": 20, "lt": 30}}]},
        lambda d: (d.u >= 20) & (d.u < 30),
    ),
    "1%": ({"must": [{"key": "u", "match": {"value": 7}}]}, lambda d: d.u == 7),
    "1% of 50%": (
        {
            "should": [{"key": "u", "match": {"value": 7}}, {"key": "u", "match": {"value": 8}}],
            "must_not": [{"key": "tag", "match": {"value": "odd"}}],
        },
        lambda d: ((d.u == 7) | (d.u == 8)) & ~_tagged(d, "odd"),
    ),
}


def _tagged(d: Data, word: str) -> np.ndarray:
    return np.array([word in p["tag"] for p in d.payloads])


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def cluster_filter(c: int) -> dict[str, Any]:
    return {"must": [{"key": "cluster", "match": {"value": c}}]}


# -- checks --------------------------------------------------------------------------------------


def rows_of(d: Data, found: np.ndarray) -> np.ndarray:
    """Row numbers of user ids (-1 stays -1)."""
    order = np.argsort(d.ids)
    slots = np.searchsorted(d.ids, found, sorter=order)
    rows = np.where(found >= 0, order[np.minimum(slots, N - 1)], -1)
    assert (d.ids[rows[found >= 0]] == found[found >= 0]).all(), "an id the index does not hold"
    return rows


def check_allowed_and_filled(found: np.ndarray, allowed: np.ndarray, k: int) -> None:
    """Every returned row is allowed, none twice, -1 only at the tail, and exactly
    min(k, allowed) of them: a filtered search is never under-filled."""
    want = min(k, int(allowed.sum()))
    assert found.shape[1] == k
    for row in found:
        valid = row[row >= 0]
        assert len(valid) == want, f"{len(valid)} points where {want} pass the filter"
        assert (row[:want] >= 0).all() and (row[want:] == -1).all()
        assert len(np.unique(valid)) == len(valid), "a point returned twice"
        assert allowed[valid].all(), "a point the filter refuses"


def masked_truth(
    queries: np.ndarray, base: np.ndarray, metric: str, allowed: np.ndarray
) -> np.ndarray:
    """Every query's exact score (float64, larger is better) against every row, -inf for
    the rows the filter refuses."""
    scores = exact_scores(queries, base, metric)
    scores[:, ~allowed] = -np.inf
    return scores


# -- flat: exact over the allowed rows -----------------------------------------------------------


@pytest.fixture(scope="module")
def flats(data: Data) -> dict[tuple[str, str], Any]:
    return {
        (storage, metric): build_index(
            data.base,
            f"flat:storage={storage}",
            metric,
            ids=data.ids,
            payloads=data.payloads,
            payload_index=PAYLOAD_INDEX,
        )
        for storage in ("f32", "f16", "lvq8")
        for metric in ("l2", "ip", "cos")
    }


def own_scores(index: Any, d: Data, queries: np.ndarray) -> np.ndarray:
    """The index's own score (larger is better) of every row, from an unfiltered search of
    every row: what an exact scan of the allowed rows must agree with."""
    full = index.search(queries, k=N)
    scores = np.full((len(queries), N), -np.inf)
    sign = -1.0 if index.metric == "l2" else 1.0
    for q in range(len(queries)):
        scores[q, rows_of(d, full.ids[q])] = sign * full.scores[q]
    return scores


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
@pytest.mark.parametrize("storage", ["f32", "f16", "lvq8"])
def test_flat_filtered_is_exact_over_the_allowed_rows(
    data: Data, flats: dict[tuple[str, str], Any], storage: str, metric: str
) -> None:
    index = flats[storage, metric]
    mine = own_scores(index, data, data.queries)
    base = data.base
    if metric == "cos":  # normalised, then stored
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
    stored = {"f32": base, "f16": base.astype(np.float16).astype(np.float32)}
    for name, (flt, rule) in SELECTIVE.items():
        allowed = rule(data)
        found = index.search(data.queries, K, filter=flt)
        rows = rows_of(data, found.ids)
        check_allowed_and_filled(rows, allowed, K)
        # the same ranking as the index's own scores restricted to the allowed rows
        restricted = np.where(allowed, mine, -np.inf)
        assert recall(rows, restricted, K, rtol=1e-6) == 1.0, name
        sign = -1.0 if metric == "l2" else 1.0
        np.testing.assert_allclose(
            sign * found.scores, np.take_along_axis(restricted, rows, 1), rtol=1e-4, atol=1e-4
        )
        if storage in stored:  # and, for float storages, numpy's float64 exact search
            truth = masked_truth(data.queries, stored[storage], metric, allowed)
            assert recall(rows, truth, K, rtol=1e-4 if storage == "f16" else 1e-5) == 1.0, name


def test_flat_correlated_filter_and_a_handful_of_rows(
    data: Data, flats: dict[tuple[str, str], Any]
) -> None:
    index = flats["f32", "l2"]
    for c in (0, 5):
        allowed = data.labels == c
        found = rows_of(data, index.search(data.queries, K, filter=cluster_filter(c)).ids)
        check_allowed_and_filled(found, allowed, K)
        assert recall(found, masked_truth(data.queries, data.base, "l2", allowed), K) == 1.0
    # fewer allowed rows than k: exactly those, best first
    few = data.ids[[3, 1000, 3999]]
    found = index.search(data.queries, K, filter={"must": [{"has_id": few.tolist()}]})
    for q, row in enumerate(rows_of(data, found.ids)):
        truth = exact_scores(data.queries[q : q + 1], data.base, "l2")[0]
        assert row[:3].tolist() == sorted([3, 1000, 3999], key=lambda r: -truth[r])
        assert (row[3:] == -1).all()


# -- hnsw: every arm against the exact filtered truth --------------------------------------------
# One test does every check on the f32 index: the fixture's build and each arm's search are
# compiled per process (some seconds each, minutes on a busy machine), and a second xdist
# worker running another test on the same fixture would compile them all again.


def build_hnsw(d: Data, storage: str) -> Any:
    return build_index(
        d.base,
        f"{HNSW},storage={storage}",
        "l2",
        ids=d.ids,
        payloads=d.payloads,
        payload_index=PAYLOAD_INDEX,
        threads=2,
    )


def check_arms(index: Any, d: Data, *, scan_floor: float) -> None:
    """recall@10 >= 0.9 (``scan_floor`` for the exact scan) for every arm and selectivity,
    and for a filter on the queries' own cluster and on another one."""
    near = d.draw(np.full(NQ, 3), seed=103)  # queries from cluster 3
    far = d.draw(np.full(NQ, 11), seed=111)  # queries from cluster 11
    cases = [(name, d.queries, flt, rule(d)) for name, (flt, rule) in SELECTIVE.items()]
    cases += [
        ("own cluster", near, cluster_filter(3), d.labels == 3),
        ("other cluster", far, cluster_filter(3), d.labels == 3),
        ("two clusters", near, {"must": [{"key": "cluster", "match": {"any": [3, 11]}}]},
         (d.labels == 3) | (d.labels == 11)),
    ]  # fmt: skip
    short = []
    for arm in ARMS:
        for name, queries, flt, allowed in cases:
            found = index.search(queries, K, params={"filter_arm": arm}, filter=flt)
            rows = rows_of(d, found.ids)
            check_allowed_and_filled(rows, allowed, K)
            got = recall(rows, masked_truth(queries, d.base, index.metric, allowed), K)
            if got < (scan_floor if arm == "scan" else 0.9):
                short.append(f"filter_arm={arm}, {name} ({allowed.sum()} rows): {got:.3f}")
    assert not short, f"{index.spec}: recall@10 under the floor: {'; '.join(short)}"


def check_sparse(index: Any, d: Data) -> None:
    """The graph arm gives up on filters the graph cannot reach and scans them: with 1 to 15
    allowed rows, scattered, every query gets min(k, allowed) of them, the best ones."""
    for n_allowed in (1, 4, 9, 10, 11, 15):
        rows = np.random.default_rng(n_allowed).choice(N, n_allowed, replace=False)
        allowed = np.zeros(N, bool)
        allowed[rows] = True
        flt = {"must": [{"has_id": d.ids[rows].tolist()}]}
        truth = masked_truth(d.queries, d.base, "l2", allowed)
        for arm in ARMS:
            found = index.search(d.queries, K, params={"filter_arm": arm}, filter=flt)
            got = rows_of(d, found.ids)
            check_allowed_and_filled(got, allowed, K)
            assert recall(got, truth, min(K, n_allowed)) >= 0.9, (arm, n_allowed)


def check_planner(index: Any, d: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    small = index.allowed_rows(SELECTIVE["1%"][0])
    large = index.allowed_rows(SELECTIVE["50%"][0])
    auto = index.resolve_params(K, {})
    assert auto.filter_arm == "auto"
    # with the shipped threshold both run as a scan on an index this small
    assert index.plan_filter(small, auto) == index.plan_filter(large, auto) == "scan"
    with monkeypatch.context() as patch:
        patch.setattr(glint.index.hnsw, "FILTER_SCAN_ROWS", 100)
        assert small.count <= 100 < large.count
        assert index.plan_filter(small, auto) == "scan"
        assert index.plan_filter(large, auto) == "graph"
        for arm in ("scan", "graph"):
            forced = index.resolve_params(K, {"filter_arm": arm})
            assert index.plan_filter(small, forced) == index.plan_filter(large, forced) == arm
        # and auto searches exactly as the arm it plans
        for allowed, arm in ((small, "scan"), (large, "graph")):
            planned = index.search(d.queries, K, filter=allowed)
            forced_search = index.search(d.queries, K, params={"filter_arm": arm}, filter=allowed)
            np.testing.assert_array_equal(planned.ids, forced_search.ids)


def test_hnsw_f32(data: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    index = build_hnsw(data, "f32")
    check_arms(index, data, scan_floor=0.999)  # f32: the scan is exact
    check_sparse(index, data)
    check_planner(index, data, monkeypatch)
    check_nothing(index, data)
    for params in ({"filter_arm": "scan"}, {"filter_arm": "graph"}):
        check_threads(index, data, params)
    for flt, field, names in BAD_FILTERS:
        check_error(index, data, flt, field, names)


@pytest.mark.slow
@pytest.mark.parametrize(
    "storage",
    [
        "lvq8",
        "lvq4x8",
    ],
)
def test_hnsw_compressed(data: Data, storage: str) -> None:
    index = build_hnsw(data, storage)
    check_arms(index, data, scan_floor=0.9)
    check_sparse(index, data)
    for params in ({"filter_arm": "scan"}, {"filter_arm": "graph"}):
        check_threads(index, data, params)


@pytest.mark.slow
def test_hnsw_graph_arm_on_sparse_scattered_filters(data: Data) -> None:
    """50 to 100 allowed rows of 4000, scattered: the graph arm should find the nearest of
    them as the scan does (recall@10 0.9 or more). A search whose allowed candidates run out
    before its results fill hands the query to the exact scan: before it did, recall was
    0.66 to 0.95 whatever ef_search."""
    index = build_hnsw(data, "f32")
    got: dict[int, list[float]] = {64: [], 256: []}
    for n_allowed in (50, 64, 80, 100):
        for seed in range(3):
            rows = np.random.default_rng(1000 * seed + n_allowed).choice(N, n_allowed, False)
            allowed = np.zeros(N, bool)
            allowed[rows] = True
            flt = {"must": [{"has_id": data.ids[rows].tolist()}]}
            truth = masked_truth(data.queries, data.base, "l2", allowed)
            for ef in got:
                params = {"filter_arm": "graph", "ef_search": ef}
                found = rows_of(data, index.search(data.queries, K, params=params, filter=flt).ids)
                check_allowed_and_filled(found, allowed, K)
                got[ef].append(recall(found, truth, K))
    assert np.mean(got[64]) >= 0.9, got[64]
    assert np.mean(got[256]) >= 0.95, got[256]


@pytest.mark.slow
def test_hnsw_filtered_search_after_save_and_load(data: Data, tmp_path: Path) -> None:
    index = build_hnsw(data, "f32")
    path = index.save(tmp_path / "h")
    loaded = load_index(path)
    try:
        assert loaded.payload_index == PAYLOAD_INDEX
        for arm in ("scan", "graph"):
            for flt, _ in SELECTIVE.values():
                before = index.search(data.queries, K, filter_arm=arm, filter=flt)
                after = loaded.search(data.queries, K, filter_arm=arm, filter=flt)
                np.testing.assert_array_equal(after.ids, before.ids)
    finally:
        loaded.close()
    # a payload index file dropped from the directory is refused
    (path / "pidx0_rows.npy").unlink()
    with pytest.raises(FormatError, match=r"pidx0_rows\.npy"):
        load_index(path)


# -- ivfpq and muvera: only allowed points, never under-filled -----------------------------------


@pytest.fixture(scope="module")
def ivfpqs(data: Data) -> dict[str, Any]:
    return {
        rerank: build_index(
            data.base,
            f"ivfpq:nlist=32,m=16,rerank={rerank}",
            "l2",
            ids=data.ids,
            payloads=data.payloads,
            payload_index=PAYLOAD_INDEX,
            threads=2,
        )
        for rerank in ("lvq8", "none")
    }


@pytest.mark.parametrize("rerank", ["lvq8", "none"])
@pytest.mark.parametrize("nprobe", [1, 4, 32])
def test_ivfpq_only_allowed_never_under_filled(
    data: Data, ivfpqs: dict[str, Any], rerank: str, nprobe: int
) -> None:
    index = ivfpqs[rerank]
    far = data.draw(np.full(NQ, 11), seed=111)
    cases = [(data.queries, flt, rule(data)) for flt, rule in SELECTIVE.values()]
    cases += [
        (far, cluster_filter(3), data.labels == 3),  # the probed lists hold few allowed rows
        (data.queries, {"must": [{"has_id": data.ids[[5, 50, 500]].tolist()}]}, np.isin(np.arange(N), [5, 50, 500])),
    ]  # fmt: skip
    for queries, flt, allowed in cases:
        found = index.search(queries, K, nprobe=nprobe, filter=flt)
        rows = rows_of(data, found.ids)
        check_allowed_and_filled(rows, allowed, K)
        if nprobe == 32 and rerank == "lvq8":  # every list, re-ranked: close to exact
            truth = masked_truth(queries, data.base, "l2", allowed)
            assert recall(rows, truth, min(K, int(allowed.sum()))) >= 0.9


@pytest.fixture(scope="module")
def documents() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    docs = token_sets(600, 32, seed=31)
    queries = queries_from(docs, 12, seed=32)
    return docs, queries


def muvera_payloads(n: int) -> list[dict[str, Any]]:
    return [{"u": i % 100, "tag": ["even" if i % 2 == 0 else "odd"]} for i in range(n)]


def check_muvera(index: Any, docs: Any, queries: Any, ids: np.ndarray, **params: Any) -> None:
    u = np.arange(600) % 100
    nothing = index.search(
        queries, K, filter={"must": [{"key": "u", "range": {"gt": 99}}]}, **params
    )
    assert (nothing.ids == -1).all()
    exact = chamfer_scores(docs, queries)
    for flt, allowed in [
        ({"must": [{"key": "u", "range": {"lt": 50}}]}, u < 50),
        ({"must": [{"key": "u", "match": {"any": [3, 4]}}]}, np.isin(u, [3, 4])),
        ({"must": [{"has_id": ids[[7, 70, 400]].tolist()}]}, np.isin(np.arange(600), [7, 70, 400])),
        ({"must_not": [{"key": "tag", "match": {"value": "odd"}}], "must": [{"key": "u", "match": {"value": 8}}]}, u == 8),
    ]:  # fmt: skip
        for threads in (1, 2):
            found = index.search(queries, K, filter=flt, threads=threads, **params)
            rows = np.where(found.ids >= 0, np.searchsorted(ids, found.ids), -1)
            check_allowed_and_filled(rows, allowed, K)
            if allowed.sum() <= K:  # all of them, in exact Chamfer order
                for q, row in enumerate(rows):
                    want = np.flatnonzero(allowed)
                    want = want[np.argsort(-exact[q, want], kind="stable")]
                    assert sorted(row[: len(want)].tolist()) == sorted(want.tolist())
                    # best first, up to the token storage's precision
                    assert (np.diff(exact[q, row[: len(want)]]) <= 0.05).all()


def test_muvera_flat_inner(documents: Any) -> None:
    docs, queries = documents
    ids = np.arange(600, dtype=np.int64) * 3 + 1  # ascending: rows by searchsorted
    index = build_index(
        {"tokens": docs[0], "offsets": docs[1]},
        "muvera:k_sim=3,r_reps=12,inner=(flat)",
        "ip",
        ids=ids,
        payloads=muvera_payloads(600),
        payload_index={"u": "integer", "tag": "keyword"},
    )
    check_muvera(index, docs, queries, ids, candidates=40)


@pytest.mark.slow
def test_muvera_hnsw_inner(documents: Any) -> None:
    docs, queries = documents
    ids = np.arange(600, dtype=np.int64) * 3 + 1
    index = build_index(
        {"tokens": docs[0], "offsets": docs[1]},
        "muvera:k_sim=3,dim_proj=16,r_reps=12,inner=(hnsw:m=16,storage=lvq8)",
        "ip",
        ids=ids,
        payloads=muvera_payloads(600),
        payload_index={"u": "integer", "tag": "keyword"},
    )
    check_muvera(index, docs, queries, ids, candidates=40)
    for arm in ("scan", "graph"):
        check_muvera(index, docs, queries, ids, candidates=40, filter_arm=arm)


# -- every kind: no row, threads, errors ---------------------------------------------------------

NOTHING = {"must": [{"key": "u", "range": {"gt": 100}}]}
BAD_FILTERS = [
    ({"must": [{"key": "lang", "match": {"value": "en"}}]}, "filter.must.0.key", "'lang'"),
    (
        {"should": [{"must_not": [{"is_empty": {"key": "meta.x"}}]}]},
        "filter.should.0.must_not.0.is_empty.key",
        "'meta.x'",
    ),
    ({"must": [{"key": "u", "match": {"value": "7"}}]}, "filter.must.0.match.value", "'u'"),
    ({"must": [{"key": "u", "match": {"value": 7.0}}]}, "filter.must.0.match.value", "'u'"),
    ({"must": [{"key": "u", "match": {"any": [1, True]}}]}, "filter.must.0.match.any.1", "'u'"),
    ({"must": [{"key": "tag", "match": {"except": [1]}}]}, "filter.must.0.match.except.0", "'tag'"),
    ({"must": [{"key": "tag", "range": {"gt": 1}}]}, "filter.must.0.range", "'tag'"),
    ({"must": []}, "filter.must", "filter.must"),
    ({"must_not": [{"should": []}]}, "filter.must_not.0.should", "filter.must_not.0.should"),
    (
        {"must": [{"key": "u", "match": {"value": 1, "except": [2]}}]},
        "filter.must.0.match",
        "filter.must.0.match",
    ),
]


def check_nothing(index: Any, d: Data) -> None:
    """A filter allowing no row answers -1 everywhere; one without clauses is no filter."""
    assert index.allowed_rows(NOTHING).count == 0
    found = index.search(d.queries, K, filter=NOTHING)
    assert found.ids.shape == (NQ, K) and (found.ids == -1).all()
    unfiltered = index.search(d.queries[:2], K, filter={})
    assert (unfiltered.ids >= 0).all()


def check_threads(index: Any, d: Data, params: dict[str, Any]) -> None:
    """One thread or two: the same filtered search."""
    for flt, _ in SELECTIVE.values():
        one = index.search(d.queries, K, params=params, filter=flt, threads=1)
        two = index.search(d.queries, K, params=params, filter=flt, threads=2)
        np.testing.assert_array_equal(one.ids, two.ids)
        np.testing.assert_array_equal(one.scores, two.scores)
        # and a filter compiled once (AllowedRows) searches as its JSON does
        again = index.search(d.queries, K, params=params, filter=index.allowed_rows(flt))
        np.testing.assert_array_equal(again.ids, one.ids)


def check_error(index: Any, d: Data, flt: dict[str, Any], field: str, names: str) -> None:
    with pytest.raises(FilterError) as info:
        index.search(d.queries[:1], K, filter=flt)
    assert info.value.field == field
    assert names in str(info.value)


@pytest.fixture(scope="module")
def every_kind(flats: dict[tuple[str, str], Any], ivfpqs: dict[str, Any]) -> dict[str, Any]:
    """The kinds but hnsw (whose checks are all in test_hnsw_f32)."""
    return {"flat": flats["lvq8", "l2"], **{f"ivfpq {k}": v for k, v in ivfpqs.items()}}


KINDS = ["flat", "ivfpq lvq8", "ivfpq none"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_filter_allowing_no_row_returns_nothing(
    data: Data, every_kind: dict[str, Any], kind: str
) -> None:
    check_nothing(every_kind[kind], data)


@pytest.mark.parametrize(
    ("kind", "params"),
    [("flat", {}), ("ivfpq lvq8", {"nprobe": 2}), ("ivfpq none", {"nprobe": 2})],
)
def test_threads_do_not_change_a_filtered_search(
    data: Data, every_kind: dict[str, Any], kind: str, params: dict[str, Any]
) -> None:
    check_threads(every_kind[kind], data, params)


@pytest.mark.parametrize(("flt", "field", "names"), BAD_FILTERS)
@pytest.mark.parametrize("kind", KINDS)
def test_filter_errors_name_the_field(
    data: Data, every_kind: dict[str, Any], kind: str, flt: dict[str, Any], field: str, names: str
) -> None:
    check_error(every_kind[kind], data, flt, field, names)
