"""A smoke run of ``glint-bench service`` on tiny data: the harness serves, measures, reloads
under load and renders its section. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from glint.bench.cli import main

from .test_bench_smoke import PNG_MAGIC, _make_dataset

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib (the bench extra)")
@pytest.mark.slow
def test_service_bench_end_to_end(tmp_path: Path, capsys) -> None:
    dataset = _make_dataset(tmp_path / "tiny", "ip", named=True)
    out, md, png = tmp_path / "svc.json", tmp_path / "svc.md", tmp_path / "svc.png"
    argv = ["service", "--dataset", str(dataset), "--spec", "hnsw:m=8,storage=lvq8"]
    argv += ["--workdir", str(tmp_path / "work"), "--nq", "50", "--repeats", "1"]
    argv += ["--load-seconds", "2", "--load-concurrency", "4", "--workers", "2"]
    argv += ["--param", "ef_search=32", "--out", str(out), "--md", str(md), "--png", str(png)]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert results["schema"] == "glint-bench-service/1"
    assert results["params"] == {"ef_search": 32}
    # the same index answers the same queries in process and through REST
    assert results["rest"]["recall"] == pytest.approx(results["in_process"]["recall"])
    assert results["rest"]["single_recall"] == pytest.approx(results["in_process"]["recall"])
    run = results["load_run"]
    assert run["errors"] == 0 and run["requests"] > 0
    (event,) = run["events"]
    assert event["status"] == 200  # the reload half way succeeded
    assert results["workers"]["count"] == 2
    assert all(w["rss"] > 0 for w in results["workers"]["per_worker"])
    text = md.read_text()
    assert "REST p50 − in-process p50" in text and "worker 2" in text
    assert png.read_bytes().startswith(PNG_MAGIC)
