"""One search request: the kind registry, ``Index.resolve_params`` and ``SearchParams.capped``."""

from __future__ import annotations

import numpy as np
import pytest

from glint.index import ConfigError, SearchParams, build_index, get_kind, parse_spec
from glint.index.errors import OverLimitError
from glint.index.registry import kind_names

from testkit import token_sets


@pytest.fixture(scope="module")
def indices(data) -> dict[str, object]:
    base = data(2000, 32, seed=21)
    docs = token_sets(300, 16, seed=22)
    return {
        "flat": build_index(base, "flat", "l2"),
        "hnsw": build_index(base, "hnsw:m=8,ef_construction=40,storage=lvq4x8", "l2"),
        "ivfpq": build_index(base, "ivfpq:nlist=16,m=8", "l2"),
        "muvera": build_index(docs, "muvera:k_sim=2,dim_proj=8,r_reps=2,inner=(flat)", "ip"),
    }


def test_every_kind_is_registered_once_with_its_types() -> None:
    assert kind_names() == ["flat", "hnsw", "ivfpq", "muvera"]
    for name in kind_names():
        kind = get_kind(name)
        assert kind.index.kind == kind.config.kind == name
        assert kind.index.config_type is kind.config and kind.index.params_type is kind.params
        assert issubclass(kind.params, SearchParams)
        assert type(parse_spec(name)) is kind.config
    with pytest.raises(ConfigError, match="unknown index kind 'hnws'; valid kinds: flat, hnsw"):
        get_kind("hnws")


def test_candidate_counts_are_tagged_in_the_models() -> None:
    fields = {name: get_kind(name).params.candidate_fields() for name in kind_names()}
    assert fields == {
        "flat": (),
        "hnsw": ("ef_search", "rerank"),
        "ivfpq": ("rerank_k",),
        "muvera": ("candidates",),
    }


def test_resolving_fills_every_default_for_k(indices) -> None:
    hnsw, ivfpq, muvera = indices["hnsw"], indices["ivfpq"], indices["muvera"]
    resolved = hnsw.resolve_params(5, {"ef_search": 40})
    assert (resolved.ef_search, resolved.rerank, resolved.resolved_for) == (40, 40, 5)
    assert resolved.given() == {"ef_search": 40}  # what the caller said, nothing more
    assert hnsw.resolve_params(5, resolved) is resolved  # resolved once, not again
    again = hnsw.resolve_params(7, resolved)  # another k: resolved afresh from what was given
    assert again.resolved_for == 7 and again.given() == {"ef_search": 40}
    found = ivfpq.resolve_params(3, None)
    assert (found.nprobe, found.rerank_k) == (2, 30)  # nlist/8 and 10·k
    deep = muvera.resolve_params(10, {})
    assert deep.candidates == 1000 and deep.inner.resolved_for == 300  # every document
    assert muvera.resolve_params(10, {"candidates": 50}).inner.resolved_for == 50


def test_a_resolved_request_searches_as_its_keywords_do(data, indices) -> None:
    queries = data(20, 32, seed=23)
    for name in ("flat", "hnsw", "ivfpq"):
        index = indices[name]
        params = {"hnsw": {"ef_search": 24}, "ivfpq": {"nprobe": 4}}.get(name, {})
        by_keywords = index.search(queries, 5, **params)
        by_mapping = index.search(queries, 5, params=params)
        by_request = index.search(queries, 5, params=index.resolve_params(5, params))
        for other in (by_mapping, by_request):
            np.testing.assert_array_equal(other.ids, by_keywords.ids)
            np.testing.assert_array_equal(other.scores, by_keywords.scores)
    with pytest.raises(ConfigError, match="as params= or as keywords, not both"):
        indices["hnsw"].search(queries, 5, params={"ef_search": 9}, ef_search=9)


def test_the_cap_lowers_defaults_and_refuses_given_values(indices) -> None:
    hnsw = indices["hnsw"]
    lowered = hnsw.resolve_params(5, {}).capped(30)
    assert (lowered.ef_search, lowered.rerank) == (30, 30) and lowered.given() == {}
    kept = hnsw.resolve_params(5, {"ef_search": 20}).capped(30)
    assert (kept.ef_search, kept.rerank) == (20, 20)
    with pytest.raises(OverLimitError, match="parameter 'ef_search': must be at most 30") as info:
        hnsw.resolve_params(5, {"ef_search": 31}).capped(30)
    assert info.value.param == "ef_search"
    muvera = indices["muvera"]
    with pytest.raises(OverLimitError) as inner_info:  # the inner index's keys are capped too
        build_index(
            token_sets(100, 16, seed=24), "muvera:k_sim=2,dim_proj=8,r_reps=2,inner=(hnsw:m=8)"
        ).resolve_params(5, {"ef_search": 99}).capped(50)
    assert inner_info.value.param == "ef_search"
    capped = muvera.resolve_params(10, {}).capped(64)
    assert capped.candidates == 64 and capped.resolved_for == 10


def test_repeated_requests_resolve_alike(indices) -> None:
    """Resolutions are kept per request: the same request gives the same object, and one for
    another k or cap does not get another's resolution."""
    hnsw = indices["hnsw"]
    first = hnsw.resolve_params(5, {"ef_search": 40})
    assert hnsw.resolve_params(5, {"ef_search": 40}) is first
    assert hnsw.resolve_params(6, {"ef_search": 40}).resolved_for == 6
    assert hnsw.resolve_params(5, {}, cap=30).ef_search == 30
    assert hnsw.resolve_params(5, {}).ef_search == 64
    with pytest.raises(ConfigError, match="invalid value 'x' for key 'ef_search'"):
        hnsw.resolve_params(5, {"ef_search": "x"})
    assert hnsw.resolve_params(5, {"ef_search": "40"}).ef_search == 40  # a number as text
    assert hnsw.resolve_params(5, {"ef_search": 40, "rerank": None}).given() == {"ef_search": 40}
    with pytest.raises(ConfigError, match="key 'ef_search'"):
        hnsw.resolve_params(5, {"ef_search": [40]})  # unhashable: not kept, still refused
    with pytest.raises(ConfigError, match="unknown key 3"):
        hnsw.resolve_params(5, {"ef_search": 40, 3: 1})  # keys that do not sort


def test_the_cap_comes_first(indices) -> None:
    """A candidate count given over the cap is refused as such, whatever else is wrong with
    it (over the kind's own bound, or a number written as text)."""
    hnsw, muvera = indices["hnsw"], indices["muvera"]
    for value in (20_000, "20000", "2.6e2", 260.0):
        with pytest.raises(OverLimitError, match="parameter 'ef_search': must be at most 256"):
            hnsw.resolve_params(5, {"ef_search": value}, cap=256)
    with pytest.raises(ConfigError, match=r"invalid value '2\.6e1' for key 'ef_search'") as info:
        hnsw.resolve_params(5, {"ef_search": "2.6e1"}, cap=256)  # under the cap: the kind says
    assert not isinstance(info.value, OverLimitError)
    with pytest.raises(OverLimitError, match="'candidates': must be at most 100"):
        muvera.resolve_params(5, {"candidates": 70_000}, cap=100)
    with pytest.raises(ConfigError, match="unknown search parameter 'threads'"):
        hnsw.resolve_params(5, {"threads": 2})


def test_a_capped_muvera_search_resolves_its_inner_index_for_the_depth_it_uses(indices) -> None:
    muvera = indices["muvera"]  # 300 documents, flat inner index
    assert muvera.resolve_params(10, {}).inner.resolved_for == 300
    capped = muvera.resolve_params(10, {}, cap=50)
    assert capped.candidates == 50 and capped.inner.resolved_for == 50 and capped.cap == 50


def test_requests_resolved_elsewhere_are_resolved_again(data, indices) -> None:
    """An index trusts only what it resolved itself, for the same k: another index's request
    is resolved again from what its caller gave, under the same cap."""
    base = data(500, 32, seed=25)
    residual = build_index(base, "hnsw:m=8,ef_construction=40,storage=lvq4x8", "l2")
    plain = build_index(base, "hnsw:m=8,ef_construction=40,storage=f32", "l2")
    made = residual.resolve_params(10, {})
    assert made.rerank == 64
    again = plain.resolve_params(10, made)
    assert again is not made and again.rerank is None
    found = plain.search(base[:3], 10, params=made)  # no "rerank needs a residual level"
    np.testing.assert_array_equal(found.ids, plain.search(base[:3], 10).ids)
    ivfpq = indices["ivfpq"]
    capped = ivfpq.resolve_params(10, {}, cap=50)
    assert ivfpq.resolve_params(20, capped).rerank_k == 50  # the cap stays with the request
    with pytest.raises(ConfigError, match="search parameters must be a mapping, got str"):
        ivfpq.search(base[:1], 5, params="nprobe=4")  # type: ignore[arg-type]
