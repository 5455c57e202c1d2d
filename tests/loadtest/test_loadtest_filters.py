"""``glint loadtest --filter``: the filter goes with every search, in every mode, to a real
server (its metrics count the filtered queries; a filter it cannot apply fails every request)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from glint.index import build_index
from glint.loadtest import LoadConfig, UsageError, run_load
from glint.service.cli import main

DIM = 16
FILTER = {"must": [{"key": "lang", "match": {"any": ["en", "de"]}}]}


@pytest.fixture
def server(tmp_path: Path, data, serve) -> str:
    payloads = [{"lang": ["en", "de", "fr"][i % 3]} for i in range(300)]
    build_index(
        data(300, DIM), "flat", "l2", payloads=payloads, payload_index={"lang": "keyword"}
    ).save(tmp_path / "docs")
    return serve(index_dirs=[str(tmp_path / "docs")])


def _filtered_queries(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('glint_search_queries_total{collection="docs",filtered="true"} '):
            return float(line.split(" ")[1])
    return 0.0


def test_every_mode_sends_the_filter(server: str) -> None:
    sent = 0
    for mode, transport, batch in (
        ("single", "json", 1),
        ("batch", "json", 4),
        ("batch", "binary", 4),
    ):
        config = LoadConfig(
            server,
            "docs",
            mode=mode,  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
            batch=batch,
            k=5,
            concurrency=2,
            count=10,
            filter=FILTER,
        )
        report = run_load(config)
        assert (report.requests, report.ok) == (10, 10), report.error_samples
        assert report.filter == FILTER
        sent += 10 * batch
        assert _filtered_queries(server) == sent


def test_cli_filter_reaches_the_server(server: str, tmp_path: Path, capsys) -> None:
    argv = ["loadtest", server, "--collection", "docs", "--count", "6", "--concurrency", "2"]
    path = tmp_path / "filter.json"
    path.write_text(json.dumps(FILTER))
    assert main([*argv, "--filter", f"@{path}"]) == 0
    assert json.loads(capsys.readouterr().out)["filter"] == FILTER
    assert _filtered_queries(server) == 6
    # a filter the collection cannot apply: every request answered 400 invalid_filter
    unindexed = json.dumps({"must": [{"key": "year", "range": {"gte": 2020}}]})
    assert main([*argv, "--filter", unindexed]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == {"total": 6, "by_kind": {"http_400": 6}}
    assert "'year' has no payload index" in report["error_samples"][0]["message"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{oops", "--filter is not valid JSON"),
        ('{"must": []}', "filter.must: List should have at least 1 item"),
        ('{"must": [{"key": "lang", "match": {"like": "e"}}]}', "filter.must.0.match.like"),
        ("[1]", "must be a Filter or a mapping"),
        ("@/no/such/file.json", "cannot read it"),
    ],
)
def test_cli_refuses_a_malformed_filter(capsys, text: str, words: str) -> None:
    argv = ["loadtest", "http://127.0.0.1:9", "--collection", "docs", "--filter", text]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glint loadtest: error: ") and words in err[0]


def test_config_keeps_the_filter_as_json() -> None:
    from glint.client import FieldCondition, Filter, Match

    typed = Filter(must=[FieldCondition(key="lang", match=Match(except_=["fr"]))])
    config = LoadConfig("http://127.0.0.1:9", "docs", filter=typed)
    assert config.filter == {"must": [{"key": "lang", "match": {"except": ["fr"]}}]}
    assert LoadConfig("http://127.0.0.1:9", "docs", filter={}).filter is None
    with pytest.raises(UsageError, match=r"filter\.should"):
        LoadConfig("http://127.0.0.1:9", "docs", filter={"should": []})
