"""`glint serve --log-format json` writes nothing but JSON lines on stderr (issue 15, item
10c): faiss's loader logs at import, with multi-line messages, through the root logger, which
had kept the text handler of the command's start-up."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from glint.index import build_index

from testkit import poll

DIM = 16


@pytest.fixture(scope="module")
def ivfpq_dir(tmp_path_factory: pytest.TempPathFactory, data) -> Path:
    path = tmp_path_factory.mktemp("logs") / "ivf"
    build_index(data(2000, DIM), "ivfpq:nlist=16,m=4", "l2").save(path)
    return path


@pytest.mark.parametrize("level", ["info", "debug"])
def test_every_stderr_line_is_a_json_record(ivfpq_dir: Path, glint_serve, level: str) -> None:
    url = glint_serve(str(ivfpq_dir), "--log-format", "json", env={"GLINT_LOG_LEVEL": level})
    response = httpx.post(
        f"{url}/v1/collections/ivf/search",
        json={"vector": [0.5] * DIM},
        headers={"x-request-id": f"json-lines-{level}"},
    )
    assert response.status_code == 200, response.text
    log = glint_serve.logs[url]
    poll(lambda: f"json-lines-{level}" in log.read_text(), interval=0.05, what="the access record")
    text = log.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]  # one unfinished
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    loader = [r for r in records if r["logger"] == "faiss.loader"]
    if level == "debug":  # faiss's records came through, their line breaks escaped
        assert any("\n" in r["message"] for r in loader), loader
    else:  # which CPU builds faiss could not load is noise at INFO
        assert loader == []
    assert any(r["logger"] == "glint.access" for r in records)
