"""``glint loadtest`` against real servers: counts, percentiles, errors, reloads, outputs."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from glint.index import build_index
from glint.loadtest import (
    SCHEMA,
    LoadConfig,
    LoadReport,
    LoadTestError,
    ReloadPlan,
    UsageError,
    load_queries,
    run_load,
)
from glint.loadtest.cli import parse_param
from glint.service.cli import main

from testkit import free_port

DIM = 16
MV_SPEC = "muvera:k_sim=2,dim_proj=8,r_reps=4,tokens=f32,inner=(flat)"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def docs_dir(tmp_path: Path, data) -> Path:
    build_index(data(300, DIM), "flat", "l2").save(tmp_path / "docs")
    return tmp_path / "docs"


@pytest.fixture
def server(docs_dir: Path, serve) -> str:
    return serve(index_dirs=[str(docs_dir)])


def _check_sane(report: LoadReport, requests: int, queries: int) -> None:
    assert report.schema == SCHEMA
    assert (report.requests, report.ok, report.queries) == (requests, requests, queries)
    assert report.errors == {"total": 0, "by_kind": {}} and report.error_samples == []
    lat = report.latency_ms
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert sum(row["requests"] for row in report.timeline) == requests
    assert sum(report.histogram_ms["counts"]) == requests
    assert report.duration_s > 0 and report.requests_per_s > 0
    assert report.queries_per_s == pytest.approx(queries / report.duration_s, rel=0.01)
    assert not report.failed


@pytest.mark.parametrize(
    ("mode", "transport", "batch"),
    [("single", "json", 1), ("batch", "json", 8), ("batch", "binary", 8)],
)
def test_modes_finish_without_errors(server: str, mode: str, transport: str, batch: int) -> None:
    count = 200 if mode == "single" else 60
    config = LoadConfig(
        server,
        "docs",
        mode=mode,  # type: ignore[arg-type]
        transport=transport,  # type: ignore[arg-type]
        batch=batch,
        k=5,
        concurrency=8,
        count=count,
        warmup=10,
    )
    report = run_load(config)
    _check_sane(report, count, count * batch)
    assert (report.mode, report.transport, report.batch, report.dim) == (
        mode,
        transport,
        batch,
        DIM,
    )
    assert report.bound == {"count": count, "duration_s": None} and report.warmup == 10


def test_queries_from_a_file(server: str, tmp_path: Path, data) -> None:
    path = tmp_path / "queries.npy"
    np.save(path, data(7, DIM, seed=3))  # fewer than a batch: rows are reused
    config = LoadConfig(
        server, "docs", mode="batch", transport="binary", batch=4, count=20, queries=path
    )
    _check_sane(run_load(config), 20, 80)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, data(5, DIM + 1))
    with pytest.raises(LoadTestError, match="dimension 17"):
        run_load(LoadConfig(server, "docs", count=5, queries=wrong))


def test_multivector_single_and_binary_batch(tmp_path: Path, multivec, serve) -> None:
    tokens, offsets = multivec(200, DIM)
    build_index({"tokens": tokens, "offsets": offsets}, MV_SPEC, "ip").save(tmp_path / "mv")
    url = serve(index_dirs=[str(tmp_path / "mv")])
    single = run_load(LoadConfig(url, "mv", k=5, concurrency=4, count=40))
    _check_sane(single, 40, 40)
    assert single.multivector is True
    queries = multivec(10, DIM, seed=1)
    for transport in ("json", "binary"):
        batch = LoadConfig(
            url, "mv", mode="batch", transport=transport, batch=3, count=15, queries=queries
        )
        _check_sane(run_load(batch), 15, 45)


def test_duration_bound(server: str) -> None:
    began = time.perf_counter()
    report = run_load(LoadConfig(server, "docs", duration=0.5, concurrency=4))
    took = time.perf_counter() - began
    assert 0.5 <= report.duration_s < 10 and took < 30
    assert report.requests > 0 and report.errors["total"] == 0
    assert report.bound == {"count": None, "duration_s": 0.5}
    assert [row["t"] for row in report.timeline] == list(range(len(report.timeline)))


def test_cli_report_out_and_png(server: str, tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "r" / "report.json", tmp_path / "run.png"
    argv = ["loadtest", server, "--collection", "docs", "--count", "100", "--concurrency", "4"]
    argv += ["--out", str(out), "--png", str(png)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert captured.err == ""
    assert printed["schema"] == SCHEMA and printed["requests"] == 100 and printed["ok"] == 100
    assert json.loads(out.read_text()) == printed
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.glob("**/.*tmp*")) == []  # no temporary files left
    assert LoadReport.from_dict(printed).to_dict() == printed


def test_errors_are_counted_by_kind(docs_dir: Path, serve, capsys) -> None:
    url = serve(index_dirs=[str(docs_dir)], max_k=5)
    argv = ["loadtest", url, "--collection", "docs", "--count", "50", "--k", "10"]
    assert main([*argv, "--concurrency", "4"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["requests"] == 50 and report["ok"] == 0 and report["queries"] == 0
    assert report["errors"] == {"total": 50, "by_kind": {"http_422": 50}}
    samples = report["error_samples"]
    assert 1 <= len(samples) <= 3 and samples[0]["kind"] == "http_422"
    assert "at most 5" in samples[0]["message"]
    assert sum(row["errors"] for row in report["timeline"]) == 50
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "50 of 50 requests failed" in lines[0] and "http_422" in lines[0]


@pytest.mark.parametrize(("mode", "transport"), [("single", "json"), ("batch", "binary")])
def test_params_reach_the_server(server: str, mode: str, transport: str) -> None:
    config = LoadConfig(
        server, "docs", mode=mode, transport=transport, batch=2, count=4, params={"nprobe": 4}
    )  # type: ignore[arg-type]
    report = run_load(config)
    assert report.params == {"nprobe": 4}
    assert report.errors == {"total": 4, "by_kind": {"http_400": 4}} and report.failed
    assert "unknown key 'nprobe'" in report.error_samples[0]["message"]


class _HangUp(BaseHTTPRequestHandler):
    """Describes a collection, then drops every search without answering."""

    def do_GET(self) -> None:
        body = json.dumps({"dim": DIM, "multivector": False}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.close_connection = True  # no answer: the client sees the connection close

    def log_message(self, *args: object) -> None:
        pass


def test_transport_errors_are_classified() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HangUp)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        report = run_load(LoadConfig(url, "docs", count=10, concurrency=2))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert report.requests == 10 and report.ok == 0
    assert report.errors == {"total": 10, "by_kind": {"RemoteProtocolError": 10}}
    assert report.error_samples[0]["message"].startswith("RemoteProtocolError")


def _run(argv: list[str]) -> int:
    """``glint`` in-process; argparse's own usage errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--count", "5", "--duration", "1"], "not allowed with argument"),
        (["--count", "0"], "must be at least 1"),
        (["--concurrency", "-1"], "must be at least 1"),
        (["--duration", "0"], "must be positive"),
        (["--transport", "binary"], "needs batch mode"),
        (["--batch", "4"], "--batch needs --mode batch"),
        (["--param", "nprobe"], "is not KEY=VALUE"),
        (["--reload-at", "1"], "needs --reload-path"),
        (
            [
                "--reload-at",
                "1",
                "--reload-at",
                "2",
                "--reload-path",
                "a",
                "--reload-path",
                "b",
                "--reload-path",
                "c",
            ],
            "one per --reload-at",
        ),
    ],
)
def test_usage_errors_are_one_line(extra: list[str], needle: str, capsys) -> None:
    assert _run(["loadtest", "http://127.0.0.1:9", "--collection", "docs", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("glint loadtest: error: ") and captured.err.count("\n") == 1
    assert needle in captured.err


def test_unreachable_and_unknown_collection(server: str, capsys) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["loadtest", dead, "--collection", "docs", "--count", "5"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("glint: error: cannot reach") and captured.err.count("\n") == 1
    assert main(["loadtest", server, "--collection", "nope", "--count", "5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 404" in err and "'nope' does not exist" in err


def test_reload_event_is_recorded(server: str, docs_dir: Path, capsys) -> None:
    argv = ["loadtest", server, "--collection", "docs", "--duration", "1.0"]
    argv += ["--concurrency", "4", "--reload-at", "0.2", "--reload-path", str(docs_dir)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["errors"]["total"] == 0 and report["requests"] > 0
    [event] = report["events"]
    assert event["kind"] == "reload" and event["status"] == 200 and event["ok"] is True
    assert event["at_s"] == 0.2 and event["start_s"] >= 0.2 and event["seconds"] >= 0
    assert event["path"] == str(docs_dir) and "flat" in event["message"]


def test_reload_failures_and_unreached_reloads(server: str, tmp_path: Path) -> None:
    config = LoadConfig(
        server,
        "docs",
        count=20,
        reloads=[ReloadPlan(0.0, str(tmp_path / "missing")), ReloadPlan(300.0, "/x")],
    )
    began = time.perf_counter()
    report = run_load(config)
    assert time.perf_counter() - began < 60  # the late reload is not waited for
    assert report.errors["total"] == 0 and report.failed
    failed, unreached = report.events
    assert failed["ok"] is False and failed["status"] is not None and failed["status"] >= 400
    assert unreached["start_s"] is None and unreached["message"].startswith("not run")


def test_config_validation_and_params(tmp_path: Path) -> None:
    assert LoadConfig("http://h:1/", "c").count == 1000
    assert LoadConfig("http://h:1/", "c").url == "http://h:1"
    with pytest.raises(UsageError, match="not both"):
        LoadConfig("http://h", "c", count=5, duration=1.0)
    with pytest.raises(UsageError, match="http://"):
        LoadConfig("127.0.0.1:8000", "c")
    with pytest.raises(UsageError, match="k must be positive"):
        LoadConfig("http://h", "c", k=0)
    assert parse_param("nprobe=8") == ("nprobe", 8)
    assert parse_param("ef = 1.5") == ("ef", 1.5)
    assert parse_param("mode=fast") == ("mode", "fast")
    assert parse_param("x=nan") == ("x", "nan")
    bad = tmp_path / "bad.npz"
    np.savez(bad, tokens=np.ones((4, 3), np.float32), offsets=np.array([0, 2, 2, 4]))
    with pytest.raises(LoadTestError, match="at least one token"):
        load_queries(bad)
    sets = load_queries((np.ones((5, 3)), np.array([0, 2, 5])))
    assert [m.shape for m in sets] == [(2, 3), (3, 3)] and sets[0].dtype == np.float32
    with pytest.raises(LoadTestError, match=r"\.npy matrix"):
        load_queries(tmp_path / "q.txt")
