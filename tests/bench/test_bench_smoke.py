"""A smoke run of the benchmark harness on tiny synthetic data, so that it cannot rot.

No timing is asserted: only that the harness runs end to end, that its rows follow the schema,
that recall is computed right, and that the report writes its sections and plot.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glint.bench.data import load_dataset, recall_at_10
from glint.bench.oppoints import (
    nearest_at_or_above,
    qps_at,
    recall_at_qps,
    summarize,
    upper_envelope,
)
from glint.bench.report import Group, png_path, report, update_markdown
from glint.bench.runner import RunOptions, run
from glint.bench.schema import ROW_KEYS, SCHEMA

HAVE_HNSWLIB = importlib.util.find_spec("hnswlib") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
KNOBS = (16, 64)
IVFPQ = "ivfpq:nlist=16,m=8,rerank=lvq8;rerank_k=50"
IVFPQ_PEER = "faiss-ivfpq:nlist=16,m=8,nbits=4,refine=sq8;rerank_k=50"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((16, dim)).astype(np.float32) * 3.0
    labels = rng.integers(0, len(centers), n)
    return (centers[labels] + rng.standard_normal((n, dim))).astype(np.float32)


def _make_dataset(root: Path, metric: str, *, named: bool) -> Path:
    """2000 x 32 clustered vectors and 50 queries with exact float64 ground truth (top 20)."""
    base, queries = _clustered(2000, 32, 1), _clustered(50, 32, 2)
    if metric == "ip":
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    q, x = queries.astype(np.float64), base.astype(np.float64)
    scores = q @ x.T if metric == "ip" else -((q[:, None, :] - x[None]) ** 2).sum(-1)
    gt = np.argsort(-scores, axis=1, kind="stable")[:, :20].astype(np.int32)
    root.mkdir(parents=True)
    np.save(root / "base.npy", base)
    suffix = "-id" if named else ""
    np.save(root / f"queries{suffix}.npy", queries)
    np.save(root / f"gt{suffix}.npy", gt)
    meta = {"dataset": root.name, "metric": f"{metric} (test data)", "n": 2000, "dim": 32}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One in-process run over a synthetic-layout dataset (queries.npy, gt.npy, l2)."""
    root = tmp_path_factory.mktemp("bench")
    dataset = _make_dataset(root / "synthetic-2000x32", "l2", named=False)
    peers = ["faiss-hnsw", *(["hnswlib"] if HAVE_HNSWLIB else [])]
    options = RunOptions(
        dataset=dataset,
        queries="id",
        configs=["flat", IVFPQ, IVFPQ_PEER, *peers],
        svs=True,
        svs_python=str(root / "no-such-python"),
        nq=50,
        repeats=1,
        threads_all=2,
        knob_values=KNOBS,
        knob_sweeps={"nprobe": (2, 16)},
        cache=root / "cache",
        isolate=False,
        out=root / "results.json",
        command="glint-bench run (smoke test)",
    )
    results = run(options)
    return root, dict(results)


@pytest.mark.slow
def test_rows_follow_the_schema(smoke: tuple[Path, dict[str, Any]]) -> None:
    root, results = smoke
    assert results["schema"] == SCHEMA
    assert json.loads((root / "results.json").read_text())["rows"] == results["rows"]
    assert {"glint", "numpy", "faiss", "python"} <= set(results["versions"])
    assert results["rows"]
    for row in results["rows"]:
        assert set(row) == set(ROW_KEYS)
        assert row["dataset"] == "synthetic-2000x32" and row["nq"] == 50
        assert 0.0 <= row["recall_at_10"] <= 1.0
        assert row["qps_1t"] > 0 and row["memory_bytes"] > 0
    assert any("svs: not run" in note for note in results["notes"])


@pytest.mark.slow
def test_recall_of_exact_and_graph_search(smoke: tuple[Path, dict[str, Any]]) -> None:
    _, results = smoke
    rows = results["rows"]
    flat = [r for r in rows if r["config"] == "flat:storage=f32"]
    assert len(flat) == 1 and flat[0]["knob"] is None
    assert flat[0]["recall_at_10"] == 1.0
    hnsw = [r for r in rows if r["config"].startswith("faiss-hnsw:")]
    assert [r["knob_value"] for r in hnsw][-1] == max(KNOBS) or hnsw[-1]["recall_at_10"] >= 0.999
    assert hnsw[-1]["recall_at_10"] > 0.8
    if HAVE_HNSWLIB:
        assert max(r["recall_at_10"] for r in rows if r["system"] == "hnswlib") > 0.8
    for config in (IVFPQ, IVFPQ_PEER):  # the nprobe sweep of --knob-sweep, both systems
        name = config.split(":")[0]
        swept = [r for r in rows if r["config"].startswith(name + ":")]
        assert [(r["knob"], r["knob_value"]) for r in swept] == [("nprobe", 2), ("nprobe", 16)]
        assert swept[-1]["recall_at_10"] > 0.5  # recall itself: tests/index/test_ivfpq.py


@pytest.mark.slow
def test_cached_builds_are_reused(smoke: tuple[Path, dict[str, Any]]) -> None:
    root, results = smoke
    entries = sorted(p.name for p in (root / "cache").iterdir())
    assert len(entries) == len({(r["system"], r["config"]) for r in results["rows"]})
    again = run(
        RunOptions(
            dataset=root / "synthetic-2000x32",
            configs=["flat"],
            nq=10,
            repeats=1,
            threads_all=1,
            cache=root / "cache",
            isolate=False,
        )
    )
    assert sorted(p.name for p in (root / "cache").iterdir()) == entries
    assert again["rows"][0]["recall_at_10"] == 1.0


def test_operating_point_interpolation() -> None:
    # (recall, qps); (0.85, 300) and (0.90, 700) are dominated by (0.92, 800)
    curve = [(0.80, 1000.0), (0.85, 300.0), (0.92, 800.0), (0.90, 700.0), (0.97, 500.0)]
    curve.append((0.995, 200.0))
    assert upper_envelope(curve) == [(0.80, 1000.0), (0.92, 800.0), (0.97, 500.0), (0.995, 200.0)]
    assert qps_at(curve, 0.90) == pytest.approx(1000 - 200 * 0.10 / 0.12)
    assert qps_at(curve, 0.95) == pytest.approx(800 - 300 * 0.03 / 0.05)
    assert qps_at(curve, 0.99) == pytest.approx(500 - 300 * 0.02 / 0.025)
    assert qps_at(curve, 0.70) == 1000.0  # below the curve: its fastest point, no extrapolation
    assert qps_at(curve, 0.999) is None  # never reached
    assert qps_at([(1.0, 50.0)], 0.95) == 50.0  # a single exact point
    # the other way round: recall at a fixed QPS, on the same envelope
    assert recall_at_qps(curve, 900.0) == pytest.approx(0.80 + 0.12 * 100 / 200)
    assert recall_at_qps(curve, 500.0) == pytest.approx(0.97)
    assert recall_at_qps(curve, 100.0) == pytest.approx(0.995)  # slowest point: its recall
    assert recall_at_qps(curve, 2000.0) is None  # never that fast


def test_ratio_and_nearest_point() -> None:
    def row(config: str, system: str, recall: float, qps: float) -> dict[str, Any]:
        return {"system": system, "config": config, "recall_at_10": recall, "qps_1t": qps,
                "qps_all": 2 * qps, "build_seconds": 1.0, "memory_bytes": 10,
                "disk_bytes": 10, "rss_bytes": None, "p50_ms": 1.0, "p99_ms": 2.0}  # fmt: skip

    rows = [
        row("faiss-hnsw:m=32,ef_construction=200", "faiss", 0.90, 1000.0),
        row("faiss-hnsw:m=32,ef_construction=200", "faiss", 1.00, 500.0),
        row("hnsw:storage=lvq4x8", "glint", 0.90, 3000.0),
        row("hnsw:storage=lvq4x8", "glint", 0.96, 2000.0),
        row("hnsw:storage=lvq4x8", "glint", 0.99, 1000.0),
    ]
    ref, mine = summarize(rows)  # type: ignore[arg-type]
    assert ref.is_reference and ref.qps_1t[0.95] == pytest.approx(750.0)
    assert mine.qps_1t[0.95] == pytest.approx(3000 - 1000 * 0.05 / 0.06)
    assert mine.ratio_1t[0.95] == pytest.approx(mine.qps_1t[0.95] / 750.0)
    assert mine.qps_all[0.90] == pytest.approx(6000.0)
    assert nearest_at_or_above(mine.rows, 0.95)["recall_at_10"] == 0.96  # type: ignore[index]


def test_recall_counts_ties_with_the_tenth_score() -> None:
    base = np.zeros((30, 4), dtype=np.float32)
    base[:, 0] = np.arange(30, 0, -1)  # row i scores 30 - i against e0 (inner product)
    base[29] = base[9]  # row 29 ties with the 10th best (row 9)
    queries = np.array([[1, 0, 0, 0]], dtype=np.float32)
    gt = np.arange(10)[None]
    returned = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 29]])
    assert recall_at_10(returned, gt, base, queries, "ip") == 1.0
    worse = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]])
    assert recall_at_10(worse, gt, base, queries, "ip") == 0.9
    dupes = np.array([[0, 0, 1, 2, 3, 4, 5, 6, 7, -1]])
    assert recall_at_10(dupes, gt, base, queries, "ip") == 0.8


def test_dataset_layouts(tmp_path: Path) -> None:
    named = load_dataset(_make_dataset(tmp_path / "dense-tiny", "ip", named=True), "id")
    assert named.metric == "ip" and named.nq == 50 and named.gt.shape == (50, 10)
    with pytest.raises(FileNotFoundError, match="ood"):
        load_dataset(tmp_path / "dense-tiny", "ood")


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib (the bench extra) is not installed")
@pytest.mark.slow
def test_report_writes_sections_and_plot(smoke: tuple[Path, dict[str, Any]]) -> None:
    root, results = smoke
    md = root / "docs" / "benchmarks.md"
    md.parent.mkdir()
    md.write_text("# Benchmarks\n\nHand-written intro.\n\n## Closing prose\n")
    update_markdown(md, "other:id", "kept section")
    png = str(root / "docs" / "bench-{dataset}-{queries}.png")
    for _ in range(2):  # a second report replaces its section instead of adding one
        written = report([root / "results.json"], md, png)
    text = md.read_text()
    start, end = (
        "<!-- bench:synthetic-2000x32:id:start -->",
        "<!-- bench:synthetic-2000x32:id:end -->",
    )
    assert text.count(start) == 1 and text.count(end) == 1
    assert "Hand-written intro." in text and "## Closing prose" in text and "kept section" in text
    section = text[text.index(start) : text.index(end)]
    assert results["command"] in section and results["machine"] in section
    for config in {r["config"] for r in results["rows"]}:
        assert any(line.startswith("| ") and f"`{config}`" in line for line in section.splitlines())
    assert "](bench-synthetic-2000x32-id.png)" in section
    # glint ivfpq next to the same faiss configuration, and the memory-vs-recall table
    twin = "| `ivfpq:nlist=16,m=8,nbits=4,opq=false,rerank=lvq8;rerank_k=50` | `faiss-ivfpq:"
    assert any(line.startswith(twin) for line in section.splitlines())
    assert "| storage | bytes/vector | recall@10 at 5,000 QPS" in section
    assert "| IVF-PQ 4-bit (m=8), re-rank LVQ-8 |" in section
    plot = root / "docs" / "bench-synthetic-2000x32-id.png"
    assert plot in written and plot.read_bytes().startswith(PNG_MAGIC)
    # a named comparison gets a section of its own beside the main one
    report([root / "results.json"], md, None, section="vs SVS R=64")
    text = md.read_text()
    assert (
        text.count(start) == 1 and "<!-- bench:vs SVS R=64:synthetic-2000x32:id:start -->" in text
    )
    assert "### `synthetic-2000x32`, `id` queries: vs SVS R=64" in text


def test_png_names_are_distinct_per_dataset_and_queries() -> None:
    group = Group("dense-minilm-100k", "ood")
    expected = Path("docs/bench-dense-minilm-100k-ood.png")
    assert png_path("docs/bench.png", group) == expected
    assert png_path("docs/bench-dense-minilm-100k.png", group) == expected
    assert png_path("docs/bench-{dataset}.png", group) == expected
    assert png_path("docs/{dataset}/{queries}.png", group) == Path("docs/dense-minilm-100k/ood.png")


@pytest.mark.slow
def test_cli_runs_in_subprocesses(tmp_path: Path) -> None:
    dataset = _make_dataset(tmp_path / "dense-tiny", "ip", named=True)
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "glint.bench", "run", "--dataset", str(dataset)]
    cmd += ["--queries", "id", "--spec", "flat", "--peers", "faiss-hnsw", "--nq", "50"]
    cmd += ["--repeats", "1", "--knob-values", "64", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    results = json.loads(out.read_text())
    assert results["command"].startswith("glint-bench run --dataset")
    rows = {r["config"]: r for r in results["rows"]}
    assert rows["flat:storage=f32"]["recall_at_10"] == 1.0
    assert rows["faiss-hnsw:m=32,ef_construction=200"]["recall_at_10"] > 0.8
    assert all(r["rss_bytes"] is None or r["rss_bytes"] >= 0 for r in rows.values())
    assert "recall=" in proc.stderr  # the progress lines


def test_graph_profile_reports_each_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glint.bench.graphs import main

    dataset = _make_dataset(tmp_path / "tiny-ip", "ip", named=True)
    argv = ["--dataset", str(dataset), "--queries", "id", "--n", "2000", "--nq", "50", "--m", "16"]
    argv += ["--ef-construction", "100", "--settings", "1.1:32", "--ef", "16,64", "--threads", "1"]
    argv += ["--storage", "f32"]  # graph quality alone, no quantization
    assert main([*argv, "--repeats", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["graph"], r["alpha"], r["beam"], r["passes"]) for r in rows] == [
        ("faiss", 1.0, 0, 0),
        ("refined", 1.1, 32, 1),
    ]
    faiss_graph, refined = rows
    for row in rows:
        assert 0 < row["mean_degree"] <= 32  # 2m columns on layer 0
        assert row["id_ef64"]["recall"] >= max(0.95, row["id_ef16"]["recall"])
        assert row["id_ef16"]["qps"] > 0
    # the refined layer 0 is fuller, and finds more at the same beam width
    assert refined["mean_degree"] > faiss_graph["mean_degree"]
    assert refined["id_ef16"]["recall"] >= faiss_graph["id_ef16"]["recall"]


def test_kernel_profile_times_every_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glint.bench.profile import main
    from glint.index.vecstore import STORAGES

    dataset = _make_dataset(tmp_path / "tiny-ip", "ip", named=True)
    argv = ["--dataset", str(dataset), "--n", "2000", "--nq", "50", "--ef", "16", "--m", "8"]
    assert main([*argv, "--repeats", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["system"] == "faiss-hnsw" and rows[0]["distances_per_query"] > 0
    glint = rows[1:]
    assert {r["storage"] for r in glint} == set(STORAGES)
    for row in glint:
        assert row["us_per_query"] > 0 and row["memory_bytes"] > 0
    # a storage searched with integers is also timed on the float kernel, on the same index
    integer = {r["storage"] for r in glint if r["kernel"] == "integer"}
    assert integer <= {r["storage"] for r in glint if r["kernel"] == "float"}
