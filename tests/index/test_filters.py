"""Filters compiled against payload indexes agree with a brute-force evaluation of the same
filter over the payload dicts (property tests), survive a save and a load, and every mistake
(a bad payload index spec, a payload of the wrong type, a filter this index cannot apply) is
the error that names it.

The reference below is written from the filter language's documented semantics, not from
the engine's code: ``must`` all hold, ``should`` at least ``min_should`` (1) hold,
``must_not`` none holds; a field holds its scalar or the elements of its list, and is empty
when missing, null or ``[]``; ``except`` needs a value and none of those given.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glint.index import ConfigError, FormatError, InputError, build_index, load_index
from glint.index.filters import FilterError, compile_filter
from glint.index.payload_index import PayloadIndex, parse_payload_index
from glint.wire.filters import Filter

FIELDS = {
    "kw": "keyword",
    "num": "integer",
    "real": "float",
    "flag": "bool",
    "meta.lang": "keyword",
    "meta.year": "integer",
}
NUMERIC = [k for k, t in FIELDS.items() if t in ("integer", "float")]
UNINDEXED = ["other", "meta", "kw.x", "meta.lang.x", "Kw", "meta.other"]
I64 = (-(2**63), 2**63 - 1)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- values --------------------------------------------------------------------------------------
# Small pools so that conditions hit, plus the edges of each type. Keywords leave out a
# trailing NUL (see test_keyword_with_a_trailing_nul); integers stay in int64; floats stay
# where a double holds an integer exactly (a float index compares in float64).

KEYWORDS = st.sampled_from(["a", "b", "c", "", "é", "a b", "A", "日本"]) | st.text(max_size=3).map(
    lambda s: s.replace("\x00", "")  # keyword indexes refuse NULs (see below)
)
INTEGERS = st.sampled_from([-2, -1, 0, 1, 2, 3]) | st.integers(*I64) | st.sampled_from(I64)
FLOATS = (
    st.sampled_from([-1.5, -1.0, -0.0, 0.0, 0.5, 1.0, 2.5])
    | st.integers(-3, 3)
    | st.floats(-1e6, 1e6, allow_nan=False)
)
VALUES = {"keyword": KEYWORDS, "integer": INTEGERS, "float": FLOATS, "bool": st.booleans()}
# range bounds: a float bound on an integer field stays small (see the report on float64)
BOUNDS = {
    "integer": st.sampled_from([-2, -1, 0, 1, 2, 3])
    | st.integers(*I64)
    | st.sampled_from([-1.5, 0.5, 2.5, -math.inf, math.inf]),
    "float": FLOATS | st.sampled_from([-math.inf, math.inf]),
}


def field_values(kind: str) -> st.SearchStrategy[Any]:
    """What a payload holds at an indexed field: null, a scalar or a list (maybe empty)."""
    scalar = VALUES[kind]
    return st.none() | scalar | st.lists(scalar, max_size=3)


META = (
    st.none()
    | st.sampled_from(["en", 3, [1, 2]])
    | st.fixed_dictionaries(
        {},
        optional={
            "lang": field_values("keyword"),
            "year": field_values("integer"),
            "other": st.integers(0, 3),
        },
    )
)
PAYLOAD = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "kw": field_values("keyword"),
        "num": field_values("integer"),
        "real": field_values("float"),
        "flag": field_values("bool"),
        "meta": META,
        "other": st.integers(0, 3),
    },
)

# every field holds something (a scalar, or a list of one or two): conditions decide on values
DENSE = st.fixed_dictionaries(
    {
        **{key: VALUES[FIELDS[key]] | st.lists(VALUES[FIELDS[key]], min_size=1, max_size=2)
           for key in ("kw", "num", "real", "flag")},
        "meta": st.fixed_dictionaries(
            {"lang": VALUES["keyword"], "year": VALUES["integer"]}
        ),
    }
)  # fmt: skip


# -- filters -------------------------------------------------------------------------------------


@st.composite
def conditions(draw: st.DrawFn, ids: list[int], depth: int) -> dict[str, Any]:
    ops = ["value", "any", "except", "range", "has_id", "is_empty"]
    op = draw(st.sampled_from([*ops, "filter"] if depth < 3 else ops))
    if op == "filter":
        return draw(filters(ids, depth + 1))
    if op == "has_id":
        known = st.sampled_from(ids) if ids else st.integers(0, 3)
        other = st.integers(-5, 2**64) | st.sampled_from([-1, 2**63, 2**70])
        return {"has_id": draw(st.lists(known | other, min_size=1, max_size=4))}
    if op == "is_empty":
        return {"is_empty": {"key": draw(st.sampled_from(list(FIELDS)))}}
    if op == "range":
        key = draw(st.sampled_from(NUMERIC))
        names = draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1))
        bound = BOUNDS[FIELDS[key]]
        return {"key": key, "range": {name: draw(bound) for name in sorted(names)}}
    key = draw(st.sampled_from(list(FIELDS)))
    values = VALUES[FIELDS[key]]
    given_ = draw(values) if op == "value" else draw(st.lists(values, min_size=1, max_size=3))
    return {"key": key, "match": {op: given_}}


@st.composite
def filters(draw: st.DrawFn, ids: list[int], depth: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for clause in ("must", "should", "must_not"):
        if draw(st.booleans()):
            out[clause] = draw(st.lists(conditions(ids, depth), min_size=1, max_size=3))
    if "should" in out and draw(st.booleans()):
        out["min_should"] = draw(st.integers(1, len(out["should"])))
    return out


# -- the reference -------------------------------------------------------------------------------


def held(payload: Any, key: str) -> list[Any]:
    """The values ``payload`` holds at dotted ``key``."""
    node = payload
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    if node is None:
        return []
    return list(node) if isinstance(node, list) else [node]


def in_range(value: Any, bounds: dict[str, Any]) -> bool:
    tests = {
        "gt": lambda b: value > b,
        "gte": lambda b: value >= b,
        "lt": lambda b: value < b,
        "lte": lambda b: value <= b,
    }
    return all(tests[name](bound) for name, bound in bounds.items())


def holds(cond: dict[str, Any], payload: Any, point_id: int) -> bool:
    if "has_id" in cond:
        return point_id in cond["has_id"]
    if "is_empty" in cond:
        return not held(payload, cond["is_empty"]["key"])
    if "key" not in cond:
        return allows(cond, payload, point_id)
    values = held(payload, cond["key"])
    if "range" in cond:
        return any(in_range(v, cond["range"]) for v in values)
    match = cond["match"]
    if "value" in match:
        return match["value"] in values
    if "any" in match:
        return any(v in match["any"] for v in values)
    return bool(values) and not any(v in match["except"] for v in values)


def allows(flt: dict[str, Any], payload: Any, point_id: int) -> bool:
    must = all(holds(c, payload, point_id) for c in flt.get("must", []))
    should = flt.get("should")
    if should is not None:
        passed = sum(holds(c, payload, point_id) for c in should)
        must = must and passed >= flt.get("min_should", 1)
    return must and not any(holds(c, payload, point_id) for c in flt.get("must_not", []))


def expected_rows(flt: dict[str, Any], payloads: list[Any], ids: list[int] | None) -> list[int]:
    return [
        row
        for row, payload in enumerate(payloads)
        if allows(flt, payload, ids[row] if ids is not None else row)
    ]


def got_rows(index: Any, flt: Any) -> list[int]:
    allowed = index.allowed_rows(flt)
    if allowed is None:
        return list(range(index.count))
    assert allowed.mask.dtype == np.uint8 and allowed.mask.shape == (index.count,)
    assert allowed.count == int(allowed.mask.sum()) == len(allowed.rows)
    return [int(r) for r in allowed.rows]


def vectors(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Any], list[int] | None, dict[str, Any]]:
    payloads = draw(st.lists(PAYLOAD | DENSE, min_size=1, max_size=24))
    n = len(payloads)
    ids = None
    if draw(st.booleans()):
        ids = draw(st.lists(st.integers(0, I64[1]), min_size=n, max_size=n, unique=True))
    return payloads, ids, draw(filters(ids or list(range(n))))


# -- properties ----------------------------------------------------------------------------------


@SETTINGS
@given(case=cases(), form=st.sampled_from(["dict", "json", "model"]))
def test_allowed_rows_match_brute_force(case: tuple[Any, ...], form: str) -> None:
    payloads, ids, flt = case
    index = build_index(
        vectors(len(payloads)), "flat", "ip", ids=ids, payloads=payloads, payload_index=FIELDS
    )
    given_ = {"dict": flt, "json": json.dumps(flt), "model": Filter.model_validate(flt)}[form]
    expected = expected_rows(flt, payloads, ids)
    assert got_rows(index, given_) == expected
    # and a search returns exactly those points (k = every row, flat is exact)
    found = index.search(vectors(len(payloads))[:2], k=len(payloads), filter=given_).ids
    external = np.asarray(ids if ids is not None else range(len(payloads)), np.int64)
    for row in found:
        assert sorted(row[row >= 0].tolist()) == sorted(external[expected].tolist())
        assert (row[len(expected) :] == -1).all()


@SETTINGS
@given(case=cases())
def test_compile_filter_directly_agrees(case: tuple[Any, ...]) -> None:
    """The compiler on its own (no index around it), with and without a kept id order."""
    payloads, ids, flt = case
    n = len(payloads)
    pidx = PayloadIndex.build(parse_payload_index(FIELDS), payloads, n)
    arr = None if ids is None else np.asarray(ids, np.int64)
    expected = expected_rows(flt, payloads, ids)
    parsed = Filter.model_validate(flt)
    for order in (None, None if arr is None else np.argsort(arr, kind="stable")):
        allowed = compile_filter(parsed, n, pidx, arr, order)
        assert allowed.rows.tolist() == expected
        assert allowed.count == len(expected)


@st.composite
def single_cases(draw: st.DrawFn) -> tuple[list[Any], list[int] | None, dict[str, Any]]:
    """One condition (not nested), under must or must_not: each operator's edges (gt
    against gte, a list's elements, an empty field) decide the answer alone."""
    payloads = draw(st.lists(PAYLOAD | DENSE, min_size=1, max_size=24))
    ids = list(range(len(payloads)))
    cond = draw(conditions(ids, 3))
    present = [v for p in payloads for v in held(p, cond.get("key", ""))]
    if present and draw(st.integers(0, 3)):  # bounds and values that rows hold exactly
        if "range" in cond:
            cond["range"] = {name: draw(st.sampled_from(present)) for name in cond["range"]}
        elif "match" in cond:
            op = next(iter(cond["match"]))
            pick = st.sampled_from(present)
            cond["match"] = {op: draw(pick) if op == "value" else draw(st.lists(pick, min_size=1))}
    return payloads, None, {draw(st.sampled_from(["must", "must_not"])): [cond]}


@SETTINGS
@given(case=single_cases())
def test_single_conditions_match_brute_force(case: tuple[Any, ...]) -> None:
    payloads, _, flt = case
    n = len(payloads)
    pidx = PayloadIndex.build(parse_payload_index(FIELDS), payloads, n)
    allowed = compile_filter(Filter.model_validate(flt), n, pidx, None)
    assert allowed.rows.tolist() == expected_rows(flt, payloads, None)


def fits(kind: str, value: Any) -> bool:
    if kind == "keyword":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


SCALARS = (
    st.text(max_size=2)
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.sampled_from(["1", "true", 1, 0, 1.0, True, False])
)


@st.composite
def wrapped(draw: st.DrawFn, cond: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``cond`` placed somewhere in a filter (beside valid conditions, nested up to three
    deep), with the path the engine names it by."""
    clause = draw(st.sampled_from(["must", "should", "must_not"]))
    before = draw(st.integers(0, 2))
    others = [{"is_empty": {"key": "kw"}}] * before
    flt: dict[str, Any] = {clause: [*others, cond]}
    path = f"{clause}.{before}"
    for _ in range(draw(st.integers(0, 2))):
        outer = draw(st.sampled_from(["must", "should", "must_not"]))
        flt = {outer: [flt]}
        path = f"{outer}.0.{path}"
    return flt, f"filter.{path}"


@SETTINGS
@given(data=st.data(), key=st.sampled_from(list(FIELDS)), value=SCALARS)
def test_a_value_of_the_wrong_type_is_a_filter_error(
    data: st.DataObject, key: str, value: Any, tiny: Any
) -> None:
    kind = FIELDS[key]
    op = data.draw(st.sampled_from(["value", "any", "except"]))
    good = data.draw(st.lists(VALUES[kind], max_size=2))
    at = data.draw(st.integers(0, len(good)))
    given_ = value if op == "value" else [*good[:at], value, *good[at:]]
    flt, path = data.draw(wrapped({"key": key, "match": {op: given_}}))
    where = f"{path}.match.value" if op == "value" else f"{path}.match.{op}.{at}"
    if fits(kind, value):
        tiny.allowed_rows(flt)  # no error
        return
    with pytest.raises(FilterError) as info:
        tiny.allowed_rows(flt)
    assert info.value.field == where
    assert repr(key) in str(info.value) and str(info.value).startswith(where)


@SETTINGS
@given(data=st.data())
def test_unindexed_fields_and_ranges_on_words_are_filter_errors(
    data: st.DataObject, tiny: Any
) -> None:
    which = data.draw(st.sampled_from(["unindexed match", "unindexed range", "is_empty", "range"]))
    if which == "range":
        key = data.draw(st.sampled_from(["kw", "flag", "meta.lang"]))
        cond: dict[str, Any] = {"key": key, "range": {"gte": data.draw(st.integers(-3, 3))}}
        suffix = ".range"
    else:
        key = data.draw(st.sampled_from(UNINDEXED))
        cond = {
            "unindexed match": {"key": key, "match": {"value": "a"}},
            "unindexed range": {"key": key, "range": {"lt": 1}},
            "is_empty": {"is_empty": {"key": key}},
        }[which]
        suffix = ".is_empty.key" if which == "is_empty" else ".key"
    flt, path = data.draw(wrapped(cond))
    with pytest.raises(FilterError) as info:
        tiny.allowed_rows(flt)
    assert info.value.field == path + suffix
    assert repr(key) in str(info.value)


# -- fixed cases ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> Any:
    payloads = [
        {"kw": "a", "num": 1, "real": 0.5, "flag": True, "meta": {"lang": "en", "year": 2001}},
        {"kw": ["b", "c"], "num": [2, 3], "real": [1, 2.5], "flag": [False]},
        {"kw": [], "num": None, "meta": None},
        None,
    ]
    return build_index(
        vectors(4), "flat", "ip", ids=[40, 30, 20, 10], payloads=payloads, payload_index=FIELDS
    )


@pytest.mark.parametrize(
    ("flt", "rows"),
    [
        ({}, [0, 1, 2, 3]),
        ({"must": [{"key": "kw", "match": {"value": "c"}}]}, [1]),
        ({"must": [{"key": "kw", "match": {"except": ["a"]}}]}, [1]),  # empty rows do not match
        ({"must": [{"key": "num", "match": {"except": [2]}}]}, [0]),  # one of 2, 3 is 2
        ({"must": [{"is_empty": {"key": "kw"}}]}, [2, 3]),
        ({"must": [{"is_empty": {"key": "meta.lang"}}]}, [1, 2, 3]),
        ({"must": [{"key": "real", "match": {"value": 1}}]}, [1]),  # an int on a float field
        ({"must": [{"key": "real", "range": {"gt": 0.5, "lt": 2}}]}, [1]),
        ({"must": [{"key": "num", "range": {"gt": 1.5, "lte": 2}}]}, [1]),
        ({"must": [{"key": "flag", "match": {"value": False}}]}, [1]),
        ({"must": [{"has_id": [10, 40, 41, -1, 2**63, 2**70]}]}, [0, 3]),
        ({"must_not": [{"has_id": [30]}]}, [0, 2, 3]),
        ({"must_not": [{}]}, []),  # a nested filter without clauses allows every row
        ({"should": [{}]}, [0, 1, 2, 3]),
        (
            {
                "should": [
                    {"key": "kw", "match": {"any": ["a", "b"]}},
                    {"key": "num", "range": {"gte": 1}},
                    {"is_empty": {"key": "real"}},
                ],
                "min_should": 2,
            },
            [0, 1],
        ),
        # a NaN bound admits no number (was: lt/lte NaN lifted the upper bound)
        ({"must": [{"key": "num", "range": {"lt": math.nan}}]}, []),
        ({"must": [{"key": "real", "range": {"lte": math.nan}}]}, []),
        ({"must": [{"key": "real", "range": {"gte": -math.inf}}]}, [0, 1]),
        ({"must": [{"key": "real", "match": {"except": [math.nan]}}]}, [0, 1]),
    ],
)
def test_fixed_filters(tiny: Any, flt: dict[str, Any], rows: list[int]) -> None:
    assert got_rows(tiny, flt) == rows
    assert got_rows(tiny, Filter.model_validate(flt)) == rows


def test_integer_fields_at_the_edges_of_int64() -> None:
    payloads = [{"n": I64[1]}, {"n": [I64[0], 3]}, {"n": 2**53 + 1}]
    index = build_index(vectors(3), "flat", "ip", payloads=payloads, payload_index={"n": "integer"})
    for cond, rows in [
        ({"match": {"value": I64[1]}}, [0]),
        ({"match": {"value": I64[0]}}, [1]),
        ({"match": {"value": 2**53}}, []),
        ({"match": {"value": 2**64}}, []),
        ({"range": {"gt": I64[1] - 1}}, [0]),
        ({"range": {"lte": I64[0]}}, [1]),
        ({"range": {"gt": 2**53, "lt": 2**53 + 2}}, [2]),
        ({"range": {"gt": 2**70}}, []),
        ({"range": {"gt": -(2**70)}}, [0, 1, 2]),
    ]:
        assert got_rows(index, {"must": [{"key": "n", **cond}]}) == rows, cond


def test_integer_range_bounds_past_int64() -> None:
    payloads = [{"n": I64[1]}, {"n": 2**62 + 1}]
    index = build_index(vectors(2), "flat", "ip", payloads=payloads, payload_index={"n": "integer"})
    assert got_rows(index, {"must": [{"key": "n", "range": {"lt": 2**63}}]}) == [0, 1]
    assert got_rows(index, {"must": [{"key": "n", "range": {"gt": float(2**62)}}]}) == [0, 1]


def test_keyword_with_a_nul_is_refused() -> None:
    """numpy's unicode arrays drop trailing NULs ("a\\x00" would be "a"): the build refuses
    such keywords, naming the field and row, and a filter value holding one matches nothing."""
    with pytest.raises(InputError, match=r"row 0: field 'kw' holds a string with a NUL"):
        build_index(vectors(2), "flat", "ip", payloads=[{"kw": "a\x00"}, {"kw": "a"}],
                    payload_index={"kw": "keyword"})  # fmt: skip
    index = build_index(
        vectors(2), "flat", "ip", payloads=[{"kw": "b"}, {"kw": "a"}],
        payload_index={"kw": "keyword"},
    )  # fmt: skip
    assert got_rows(index, {"must": [{"key": "kw", "match": {"value": "a"}}]}) == [1]
    assert got_rows(index, {"must": [{"key": "kw", "match": {"value": "a\x00"}}]}) == []


# -- save and load -------------------------------------------------------------------------------


def random_payloads(n: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    words = ["a", "b", "c", "", "é"]
    out: list[Any] = []
    for row in range(n):
        if rng.random() < 0.05:
            out.append(None)
            continue
        p: dict[str, Any] = {}
        for key, make in (
            ("kw", lambda: words[rng.integers(len(words))]),
            ("num", lambda: int(rng.integers(-3, 4))),
            ("real", lambda: float(rng.choice([-1.5, 0.0, 0.5, 1.0, 2.5]))),
            ("flag", lambda: bool(rng.random() < 0.5)),
        ):
            shape = rng.random()
            if shape < 0.15:
                continue  # missing
            p[key] = (
                None
                if shape < 0.25
                else make()
                if shape < 0.7
                else [make() for _ in range(rng.integers(0, 4))]
            )
        if rng.random() < 0.8:
            p["meta"] = {
                "lang": words[rng.integers(len(words))],
                "year": int(rng.integers(1990, 1995)),
            }
            if rng.random() < 0.2:
                del p["meta"]["lang"]
        p["row"] = row
        out.append(p)
    return out


N_SAVED = 300
SAVED_IDS = [k * 1_000_003 + 7 for k in range(N_SAVED)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """A flat index with user ids and every kind of payload field, saved and loaded again."""
    payloads = random_payloads(N_SAVED, 3)
    ids = [SAVED_IDS[k] for k in np.random.default_rng(4).permutation(N_SAVED)]
    index = build_index(
        vectors(N_SAVED), "flat", "ip", ids=ids, payloads=payloads, payload_index=FIELDS
    )
    path = index.save(tmp_path_factory.mktemp("saved") / "idx")
    loaded = load_index(path)
    yield index, loaded, path, payloads, ids
    loaded.close()


@settings(max_examples=80, deadline=None, database=None)
@given(flt=filters(SAVED_IDS))
def test_save_load_keeps_the_allowed_rows(saved: Any, flt: dict[str, Any]) -> None:
    index, loaded, _, payloads, ids = saved
    assert loaded.payload_index == index.payload_index == FIELDS
    want = expected_rows(flt, payloads, ids)
    assert got_rows(index, flt) == want
    assert got_rows(loaded, flt) == want
    if want:  # and the loaded index searches only those rows
        found = loaded.search(vectors(N_SAVED)[:1], k=N_SAVED, filter=flt).ids[0]
        assert sorted(found[found >= 0].tolist()) == sorted(ids[r] for r in want)


def test_has_id_with_user_ids_after_load(saved: Any) -> None:
    _, loaded, _, _, ids = saved
    wanted = [ids[5], ids[17], 12345, ids[299], -3]
    assert got_rows(loaded, {"must": [{"has_id": wanted}]}) == [5, 17, 299]


def test_manifest_lists_the_payload_index_files(saved: Any) -> None:
    path = saved[2]
    manifest = json.loads((path / "manifest.json").read_text())
    entry = manifest["payload_index"]
    assert {name: e["type"] for name, e in entry.items()} == FIELDS
    assert sorted(e["slot"] for e in entry.values()) == list(range(len(FIELDS)))
    want = set()
    for e in entry.values():
        parts = ["values", "rows", "present"] + (["offsets"] if e["type"] == "keyword" else [])
        want |= {f"pidx{e['slot']}_{part}.npy" for part in parts}
    listed = {name for name in manifest["files"] if name.startswith("pidx")}
    assert listed == want
    assert listed <= {p.name for p in path.iterdir()}


def _copy(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(path, out)
    return out


def test_a_tampered_payload_index_file_is_refused(saved: Any, tmp_path: Path) -> None:
    path = saved[2]
    copy = _copy(path, tmp_path)
    target = copy / "pidx1_values.npy"  # num: the sorted int64 values
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"pidx1_values\.npy"):
        load_index(copy)


def test_a_payload_index_with_rows_out_of_range_is_refused_unverified(
    saved: Any, tmp_path: Path
) -> None:
    """Without checksums (verify=False) the arrays' shapes and rows are still checked."""
    path = saved[2]
    copy = _copy(path, tmp_path)
    target = copy / "pidx0_rows.npy"
    rows = np.load(target)
    rows[0] = 300  # one past the last row
    size = target.stat().st_size
    np.save(target, rows)
    assert target.stat().st_size == size
    with pytest.raises(FormatError, match="payload index of 'kw'"):
        load_index(copy, verify=False)


def test_a_missing_payload_index_file_is_refused(saved: Any, tmp_path: Path) -> None:
    path = saved[2]
    copy = _copy(path, tmp_path)
    (copy / "pidx4_offsets.npy").unlink()
    with pytest.raises(FormatError, match=r"pidx4_offsets\.npy"):
        load_index(copy)


# -- build errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "bad"),
    [
        ("kw", "keyword", 3),
        ("kw", "keyword", ["a", True]),
        ("num", "integer", 1.0),
        ("num", "integer", True),
        ("num", "integer", "1"),
        ("num", "integer", 2**63),  # past int64 (was an OverflowError)
        ("num", "integer", [1, -(2**63) - 1]),
        ("real", "float", "0.5"),
        ("real", "float", False),
        ("real", "float", 2**1100),  # past a double (was an OverflowError)
        ("flag", "bool", 1),
        ("flag", "bool", "true"),
        ("meta.lang", "keyword", {"en": 1}),
        ("meta.lang", "keyword", [["en"]]),
    ],
)
def test_a_payload_of_the_wrong_type_is_an_input_error(key: str, kind: str, bad: Any) -> None:
    payloads: list[Any] = [{"kw": "a", "num": 1, "real": 0.5, "flag": True} for _ in range(5)]
    head, _, tail = key.rpartition(".")
    (payloads[3].setdefault(head, {}) if head else payloads[3])[tail] = bad
    with pytest.raises(InputError) as info:
        build_index(vectors(5), "flat", "ip", payloads=payloads, payload_index={key: kind})
    assert "row 3" in str(info.value) and repr(key) in str(info.value)


def test_payload_index_without_payloads_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lang"):
        build_index(vectors(3), "flat", "ip", payload_index={"lang": "keyword"})


@pytest.mark.parametrize(
    "spec",
    [
        ["lang"],
        ["lang:text"],
        {"lang": "text"},
        ["lang:keyword", "lang:integer"],
        [":keyword"],
        ["a..b:keyword"],
        {"meta.": "keyword"},
        ["lang:"],
    ],
)
def test_bad_payload_index_specs_are_config_errors(spec: Any) -> None:
    with pytest.raises(ConfigError):
        parse_payload_index(spec)
    with pytest.raises(ConfigError):
        build_index(vectors(2), "flat", "ip", payloads=[{}, {}], payload_index=spec)


def test_payload_index_spec_forms_agree() -> None:
    assert parse_payload_index(["meta.lang:keyword", "n:integer", "a:b:float"]) == {
        "meta.lang": "keyword",
        "n": "integer",
        "a:b": "float",
    }
    assert parse_payload_index(None) == parse_payload_index([]) == {}


@pytest.mark.parametrize(
    "flt",
    [
        {"must": []},
        {"should": [{"key": "kw", "match": {"value": "a"}}], "min_should": 2},
        {"must": [{"key": "kw", "match": {"value": "a", "any": ["b"]}}]},
        {"must": [{"key": "kw", "match": {}}]},
        {"must": [{"key": "num", "range": {}}]},
        {"must": [{"key": "kw", "match": {"value": "a"}, "range": {"gt": 1}}]},
        {"must": [{"has_id": []}]},
        {"must": [{"has_id": ["1"]}]},
        {"mustt": [{"key": "kw", "match": {"value": "a"}}]},
        {"must": [{"key": "kw", "match": {"equals": "a"}}]},
        "[1, 2]",
        "{not json",
    ],
)
def test_malformed_filters_are_filter_errors_naming_the_place(tiny: Any, flt: Any) -> None:
    with pytest.raises(FilterError) as info:
        tiny.allowed_rows(flt)
    assert str(info.value).startswith("filter")
    assert info.value.field.startswith("filter")


# -- limits and hand-made masks -----------------------------------------------------------------


def test_clause_lists_are_bounded() -> None:
    from glint.wire.filters import MAX_CLAUSES

    index = build_index(vectors(3), "flat", "ip", payloads=[{"kw": "a"}, {"kw": "b"}, None],
                        payload_index={"kw": "keyword"})  # fmt: skip
    cond = {"key": "kw", "match": {"value": "a"}}
    assert got_rows(index, {"should": [cond] * MAX_CLAUSES}) == [0]
    assert got_rows(index, {"should": [cond] * MAX_CLAUSES, "min_should": 2}) == [0]
    with pytest.raises(FilterError, match=r"filter\.should: .*at most 1024"):
        index.allowed_rows({"should": [cond] * (MAX_CLAUSES + 1)})


def test_allowed_rows_of_another_index_are_refused() -> None:
    small = build_index(vectors(3), "flat", "ip")
    large = build_index(vectors(5), "flat", "ip")
    allowed = large.allowed_rows({"must": [{"has_id": [1]}]})
    with pytest.raises(InputError, match="allowed rows for 5 rows, this index has 3"):
        small.search(vectors(1), 1, filter=allowed)
    assert large.search(vectors(5), 2, filter=allowed).ids[:, 0].tolist() == [1] * 5
