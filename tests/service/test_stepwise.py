"""Large JSON batch bodies validated a step at a time give what validating them whole gives:
the same queries, ``k``, ``params`` and filter, or the same error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from glint.index import TokenSets
from glint.service import stepwise
from glint.service.errors import ServiceError
from glint.service.routes import search as search_routes

ROWS, DIM = 300, 48
FILTER = {
    "must": [{"key": "lang", "match": {"any": ["en", "de"]}}],
    "should": [{"key": "year", "range": {"gte": 2020}}, {"has_id": [1, 2]}],
}
# the array's key as a value: after the array, it makes a body be parsed whole
NAMING_FILTER = {"must": [{"key": "vectors", "match": {"value": "vectors"}}]}


def _rows(seed: int = 0, rows: int = ROWS) -> list[list[float]]:
    values = np.random.default_rng(seed).standard_normal((rows, DIM)) * 10.0 ** (seed % 5 - 2)
    return values.round(6).tolist()


def _sets(seed: int = 0) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(n), DIM)).round(5).tolist() for n in rng.integers(1, 9, 150)]


def _compact(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _outcome(body: bytes) -> tuple[str, Any]:
    """What ``_json_batch`` makes of ``body``: the batch, or the error's type and text."""
    try:
        queries, k, params, flt = search_routes._json_batch(body, None)
    except (RequestValidationError, ServiceError) as exc:
        if isinstance(exc, ServiceError):
            return "ServiceError", (exc.code, exc.message, exc.field)
        return "invalid", [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    if isinstance(queries, TokenSets):
        queries = (queries.tokens.tolist(), queries.offsets.tolist())
    else:
        queries = queries.tolist()
    dumped = None if flt is None else flt.model_dump(by_alias=True, exclude_none=True)
    return "ok", (queries, k, params, dumped)


@pytest.fixture
def compare(monkeypatch) -> Callable[[bytes], tuple[str, Any]]:
    """Check that ``body`` comes out the same validated in (small) steps and whole."""
    monkeypatch.setattr(stepwise, "STEP_BYTES", 2048)  # many steps, some cut mid-body
    real_split = stepwise.split

    def check(body: bytes) -> tuple[str, Any]:
        assert len(body) >= search_routes.SMALL_JSON_BODY
        stepped = _outcome(body)
        monkeypatch.setattr(stepwise, "split", lambda _: None)
        whole = _outcome(body)
        monkeypatch.setattr(stepwise, "split", real_split)
        assert stepped == whole
        return stepped

    return check


BODIES: dict[str, bytes] = {
    "vectors": _compact({"vectors": _rows(1), "k": 7, "params": {"ef_search": 40}}),
    "keys before": _compact({"params": {"a": [1, 2]}, "k": 3, "vectors": _rows(2)}),
    "spaces": json.dumps({"vectors": _rows(3), "k": 2}).encode(),
    "indented": json.dumps({"vectors": _rows(4), "k": 2}, indent=2).encode(),
    "token sets": _compact({"token_sets": _sets(5), "k": 4}),
    "token sets, spaces": json.dumps({"token_sets": _sets(6)}).encode(),
    "tiny numbers": _compact({"vectors": _rows(7)}),
    "integers": _compact({"vectors": np.arange(ROWS * DIM).reshape(ROWS, DIM).tolist()}),
    "filter": _compact({"vectors": _rows(11), "filter": FILTER}),
    # (these two are parsed whole: the key is found in a string of the filter)
    "filter before": _compact({"filter": NAMING_FILTER, "vectors": _rows(12), "k": 5}),
    "filter naming the key": _compact({"vectors": _rows(13), "filter": NAMING_FILTER}),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_valid_bodies_come_out_the_same(name: str, compare) -> None:
    status, batch = compare(BODIES[name])
    assert status == "ok"
    filters = {"filter": FILTER, "filter before": NAMING_FILTER}
    assert batch[3] == filters.get(name, NAMING_FILTER if name.startswith("filter") else None)
    if name != "token sets":
        return
    # the compact token sets were really taken in steps, not handed on whole
    assert stepwise.split(BODIES[name]) is not None


def test_compact_bodies_are_taken_in_steps(monkeypatch) -> None:
    monkeypatch.setattr(stepwise, "STEP_BYTES", 2048)
    for name in ("vectors", "keys before", "token sets", "tiny numbers", "integers", "filter"):
        split = stepwise.split(BODIES[name])
        assert split is not None, name
        assert len(list(split.steps())) > 10


def _broken(body: bytes, old: bytes, new: bytes, at: float = 0.5) -> bytes:
    """``body`` with the first ``old`` after ``at`` of its length replaced by ``new``."""
    where = body.index(old, int(len(body) * at))
    return body[:where] + new + body[where + len(old) :]


VECTORS = BODIES["vectors"]
SETS = BODIES["token sets"]
BAD: dict[str, bytes] = {
    "k true": VECTORS.replace(b'"k":7', b'"k":true'),
    "k float": VECTORS.replace(b'"k":7', b'"k":7.0'),
    "unknown field": VECTORS.replace(b'"k":7', b'"k":7,"kk":1'),
    "both fields": VECTORS[:-1] + b',"token_sets":[[[1.0]]]}',
    "ragged row": _broken(VECTORS, b"],[", b",1.5],["),
    "string in a row": _broken(VECTORS, b",", b',"1.5",'),
    "no comma between rows": _broken(VECTORS, b"],[", b"]["),
    "two commas": _broken(VECTORS, b"],[", b"],,["),
    "a step cut after a comma": _broken(VECTORS, b"],[", b"],", at=0.9),
    "nested deeper": _broken(VECTORS, b"],[", b"],[[1.0]],["),
    "null row": _broken(VECTORS, b"],[", b"],null,["),
    "trailing garbage": VECTORS + b"x",
    "not closed": VECTORS[:-2],
    "NaN": _broken(VECTORS, b",", b",NaN,"),
    "huge number": _broken(VECTORS, b",", b",1e999,"),
    "duplicate key, last wins": VECTORS[:-1] + b',"vectors":[[1.0,2.0]]}',
    # the last value is the placeholder the masked body holds: still the last value wins
    "duplicate key, last is the placeholder": VECTORS[:-1] + b',"vectors":[[0]]}',
    "duplicate key, last is the placeholder set": SETS[:-1] + b',"token_sets":[[[0]]]}',
    "key in params": _compact({"params": {"vectors": _rows(8)}, "vectors": [[0.0]]}),
    "key inside a string": _compact({"params": {"x": '"vectors":' + json.dumps(_rows(9))}}),
    "escaped key": _compact({"params": {'x"vectors': _rows(10)}, "vectors": [[0]]}),
    "empty row": _broken(VECTORS, b"],[", b"],[],["),
    "ragged set": _broken(SETS, b"]],[[", b",1.0]],[["),
    "set not a matrix": _broken(SETS, b"]],[[", b"]],[1.0,2.0],[["),
    "empty set": _broken(SETS, b"]],[[", b"]],[],[["),
    "malformed filter": VECTORS[:-1] + b',"filter":{"must":[]}}',
    "filter of two operators": VECTORS[:-1]
    + b',"filter":{"must":[{"key":"a","match":{"value":1,"any":[2]}}]}}',
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_other_bodies_get_the_answer_a_whole_parse_gives(name: str, compare) -> None:
    compare(BAD[name])


def test_a_repeated_key_is_parsed_whole() -> None:
    for name in ("duplicate key, last is the placeholder", "duplicate key, last wins"):
        assert stepwise.split(BAD[name]) is None, name
    queries, *_ = search_routes._json_batch(BAD["duplicate key, last is the placeholder"], None)
    assert queries.tolist() == [[0.0]]


def test_a_step_full_of_bad_items_is_one_error() -> None:
    """A step stops at its first bad item, as the request model does (fail_fast): not one
    error (and one dict, one copy of the input) per item of a huge body."""
    bad_row = b"[" + b",".join([b"null"] * 50_000) + b"]"
    for body in (
        b'{"vectors":[' + bad_row + b"," + bad_row + b"]}",
        b'{"token_sets":[[' + bad_row + b"],[" + bad_row + b"]]}",
    ):
        split = stepwise.split(body)
        assert split is not None
        with pytest.raises(ValidationError) as refused:
            list(split.steps())
        assert refused.value.error_count() == 1
        with pytest.raises(RequestValidationError) as whole:
            search_routes._json_batch(body, None)
        assert [e["type"] for e in whole.value.errors()] == ["float_type"]
