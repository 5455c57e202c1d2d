"""The `glint` command: results, output format, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GLINT = [sys.executable, "-m", "glint.service.cli"]


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*GLINT, *args], capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0], lines[0]


@pytest.fixture
def files(tmp_path: Path, data, exact) -> dict[str, Path]:
    base, queries = data(2000, 24, seed=1), data(40, 24, seed=2)
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)
    (tmp_path / "payloads.jsonl").write_text(
        "".join(json.dumps({"i": i}) + "\n" for i in range(2000))
    )
    np.save(tmp_path / "ids.npy", np.arange(2000, dtype=np.int64) + 10)
    np.save(tmp_path / "truth.npy", exact(queries, base, 10, "cos"))
    return {
        name: tmp_path / f"{name}.{ext}"
        for name, ext in [
            ("base", "npy"),
            ("queries", "npy"),
            ("payloads", "jsonl"),
            ("ids", "npy"),
            ("truth", "npy"),
        ]
    } | {"dir": tmp_path}


@pytest.mark.slow
def test_build_search_info(files: dict[str, Path]) -> None:
    out = files["dir"] / "ix"
    built = run(
        "build",
        str(files["base"]),
        "--index",
        "flat:storage=f32",
        "--metric",
        "cos",
        "--out",
        str(out),
        "--ids",
        str(files["ids"]),
        "--payloads",
        str(files["payloads"]),
    )
    summary = json.loads(built.stdout)
    assert summary["count"] == 2000 and summary["dim"] == 24 and summary["metric"] == "cos"
    assert built.stderr == ""  # piped: no progress bar

    result = files["dir"] / "result.npz"
    searched = run(
        "search",
        str(out),
        "--queries",
        str(files["queries"]),
        "--k",
        "10",
        "--threads",
        "2",
        "--out",
        str(result),
    )
    line = json.loads(searched.stdout)
    assert line["queries"] == 40 and line["k"] == 10 and line["threads"] == 2
    assert line["seconds"] > 0 and line["qps"] > 0
    arrays = np.load(result)
    assert arrays["ids"].shape == (40, 10) and arrays["ids"].dtype == np.int64
    assert arrays["scores"].dtype == np.float32
    np.testing.assert_array_equal(arrays["ids"], np.load(files["truth"]) + 10)

    info = json.loads(run("info", str(out)).stdout)
    assert info["kind"] == "flat" and info["count"] == 2000 and info["has_payloads"] is True
    assert "vectors.npy" in info["files"]


@pytest.mark.slow
def test_user_errors_are_one_line(files: dict[str, Path]) -> None:
    d = files["dir"]
    base = str(files["base"])
    assert_one_line_error(
        run("build", str(d / "missing.npy"), "--out", str(d / "x"), ok=False), "missing.npy"
    )
    assert_one_line_error(
        run("build", base, "--index", "flat:storage=f8", "--out", str(d / "x"), ok=False),
        "invalid value 'f8' for key 'storage'",
    )
    assert_one_line_error(
        run("build", base, "--index", "hnswx", "--out", str(d / "x"), ok=False),
        "unknown index kind 'hnswx'; valid kinds:",
    )
    assert_one_line_error(
        run("build", base, "--metric", "dot", "--out", str(d / "x"), ok=False),
        "invalid choice: 'dot'",
    )
    assert_one_line_error(
        run("build", base, "--ids", str(d / "payloads.jsonl"), "--out", str(d / "x"), ok=False),
        "payloads.jsonl",
    )
    assert not (d / "x").exists()

    run("build", base, "--out", str(d / "ix"))
    assert_one_line_error(
        run("build", base, "--out", str(d / "ix"), ok=False), "already exists; pass --overwrite"
    )
    q = str(files["queries"])
    out = str(d / "r.npz")
    assert_one_line_error(
        run("search", str(d / "ix"), "--queries", q, "--k", "0", "--out", out, ok=False),
        "must be at least 1",
    )
    assert_one_line_error(
        run(
            "search",
            str(d / "ix"),
            "--queries",
            q,
            "--k",
            "3",
            "--param",
            "ef_search=4",
            "--out",
            out,
            ok=False,
        ),
        "unknown key 'ef_search'",
    )
    np.save(d / "short.npy", np.zeros((3, 5), np.float32))
    assert_one_line_error(
        run(
            "search",
            str(d / "ix"),
            "--queries",
            str(d / "short.npy"),
            "--k",
            "3",
            "--out",
            out,
            ok=False,
        ),
        "expected dimension 24, got 5",
    )
    assert_one_line_error(
        run("search", str(d), "--queries", q, "--k", "3", "--out", out, ok=False),
        "not a glint index",
    )
    assert_one_line_error(run("info", str(d / "nothing"), ok=False), "no such index directory")
    assert_one_line_error(run(ok=False), "the following arguments are required")


def test_damaged_index_is_refused_by_cli(files: dict[str, Path]) -> None:
    out = files["dir"] / "ix"
    run("build", str(files["base"]), "--out", str(out))
    vectors = out / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-8])
    assert_one_line_error(run("info", str(out), ok=False), "damaged index")
