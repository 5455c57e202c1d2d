"""`glint build --payload-index` and `glint search --filter`: the ids of an in-process filtered
search, `glint info` naming the payload indexes, and one-line errors for bad specs and filters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glint.index import load_index

from testkit import clustered, glint_error, run_glint

N, DIM, NQ, K = 600, 16, 12, 10
FILTER = {
    "must": [{"key": "year", "range": {"gte": 2018}}],
    "must_not": [{"key": "lang", "match": {"value": "fr"}}],
    "should": [
        {"key": "draft", "match": {"value": True}},
        {"key": "meta.score", "range": {"lt": 5}},
    ],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-filters")
    np.save(root / "base.npy", clustered(N, DIM, seed=21))
    np.save(root / "queries.npy", clustered(NQ, DIM, seed=22))
    lines = [
        json.dumps(
            {
                "lang": ["en", "de", "fr"][i % 3],
                "year": 2014 + i % 8,
                "draft": i % 5 == 0,
                "meta": {"score": (i * 7) % 10 + 0.5},
            }
        )
        for i in range(N)
    ]
    (root / "payloads.jsonl").write_text("\n".join(lines) + "\n")
    out = root / "ix"
    built = run_glint(
        "build",
        root / "base.npy",
        "--index",
        "flat",
        "--metric",
        "l2",
        "--payloads",
        root / "payloads.jsonl",
        "--payload-index",
        "lang:keyword",
        "--payload-index",
        "year:integer",
        "--payload-index",
        "draft:bool",
        "--payload-index",
        "meta.score:float",
        "--out",
        out,
    )
    summary = json.loads(built.stdout)
    assert summary["payload_index"] == {
        "lang": "keyword",
        "year": "integer",
        "draft": "bool",
        "meta.score": "float",
    }
    return {"root": root, "ix": out, "queries": root / "queries.npy"}


def _search(built: dict[str, Path], *extra: str) -> tuple[dict[str, Any], np.lib.npyio.NpzFile]:
    result = built["root"] / "result.npz"
    proc = run_glint(
        "search", built["ix"], "--queries", built["queries"], "--k", str(K), "--out", result, *extra
    )
    return json.loads(proc.stdout), np.load(result)


def test_search_with_a_filter_gives_the_in_process_ids(built: dict[str, Path]) -> None:
    index = load_index(built["ix"])
    want = index.search(np.load(built["queries"]), K, filter=FILTER)
    allowed = index.allowed_rows(FILTER)
    assert allowed is not None and 0 < allowed.count < N // 2
    line, result = _search(built, "--filter", json.dumps(FILTER))
    np.testing.assert_array_equal(result["ids"], want.ids)
    np.testing.assert_array_equal(result["scores"], want.scores)
    assert line["filter_allowed"] == allowed.count and line["queries"] == NQ
    # passes the filter: every id returned
    payloads = index.payloads(result["ids"][result["ids"] >= 0].tolist())
    for payload in payloads.values():
        assert payload["year"] >= 2018 and payload["lang"] != "fr"
        assert payload["draft"] or payload["meta"]["score"] < 5

    path = built["root"] / "filter.json"
    path.write_text(json.dumps(FILTER))
    _, from_file = _search(built, "--filter", f"@{path}")
    np.testing.assert_array_equal(from_file["ids"], want.ids)
    index.close()


def test_info_shows_the_payload_indexes(built: dict[str, Path]) -> None:
    info = json.loads(run_glint("info", built["ix"]).stdout)
    assert info["payload_index"] == {
        "lang": "keyword",
        "year": "integer",
        "draft": "bool",
        "meta.score": "float",
    }


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("lang", "is not FIELD:TYPE"),
        ("lang:text", "type 'text' is not one of keyword, integer, float, bool"),
        (":keyword", "is not FIELD:TYPE"),
        ("a..b:keyword", "is not a field name"),
    ],
)
def test_bad_payload_index_spec(built: dict[str, Path], spec: str, words: str) -> None:
    out = built["root"] / "never"
    line = glint_error(
        "build",
        built["root"] / "base.npy",
        "--payloads",
        built["root"] / "payloads.jsonl",
        "--payload-index",
        spec,
        "--out",
        out,
    )
    assert line.startswith("glint: error: ") and words in line, line
    assert not out.exists()


def test_payload_index_of_the_wrong_type_or_without_payloads(built: dict[str, Path]) -> None:
    base = built["root"] / "base.npy"
    line = glint_error(
        "build",
        base,
        "--payloads",
        built["root"] / "payloads.jsonl",
        "--payload-index",
        "meta.score:integer",
        "--out",
        built["root"] / "never",
    )
    assert "row 0: field 'meta.score' holds 0.5" in line and "integer" in line, line
    line = glint_error(
        "build", base, "--payload-index", "lang:keyword", "--out", built["root"] / "never"
    )
    assert "no payloads" in line, line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{oops", "--filter: filter: not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"must": []}', "filter.must"),
        ('{"must": [{"key": "lang", "match": {"value": "en", "any": ["de"]}}]}', "exactly one"),
        ('{"must": [{"key": "color", "match": {"value": "red"}}]}', "'color' has no payload index"),
        ('{"must": [{"key": "year", "match": {"value": "2020"}}]}', "filter.must.0.match.value"),
        ('{"must": [{"key": "lang", "range": {"gt": 1}}]}', "filter.must.0.range"),
        ("@/no/such/filter.json", "--filter /no/such/filter.json: cannot read it"),
        ("[" * 5000, "nested too deeply"),
    ],
)
def test_bad_filter(built: dict[str, Path], text: str, words: str) -> None:
    line = glint_error(
        "search",
        built["ix"],
        "--queries",
        built["queries"],
        "--k",
        "5",
        "--out",
        built["root"] / "never.npz",
        "--filter",
        text,
    )
    assert line.startswith("glint: error: ") and words in line, line
    assert not (built["root"] / "never.npz").exists()
