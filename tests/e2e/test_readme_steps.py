"""The README's "From a file of vectors" steps, run as written (in a scratch folder, with this
environment's `glint` and `python` on PATH in place of `./dev setup && source ...`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glint.client import Client

from testkit import free_port, stop_process, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def _steps() -> list[str]:
    """The first bash block of the section, one command per entry (continuations joined,
    comments dropped)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From a file of vectors to a running service\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block in the section"
    text = block[1].replace("\\\n", " ")
    return [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_steps_run_as_written(tmp_path: Path) -> None:
    steps = _steps()
    assert steps[0] == "./dev setup && source .venv/bin/activate"
    assert steps[-1].startswith("glint serve ")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for step in steps[1:-1]:
        done = subprocess.run(
            ["bash", "-c", step],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{step}\n{done.stderr}"
        outputs.append(done.stdout)

    built = json.loads(next(o for o in outputs if '"check_recall"' in o))
    assert built["count"] == 20_000 and built["check_recall"]["recall"] >= 0.9
    result = np.load(tmp_path / "result.npz")
    assert result["ids"].shape == (100, 10) and (result["ids"] >= 1_000_000).all()

    port = free_port()
    serve = steps[-1].replace("--port 8000", f"--port {port}")
    log = tmp_path / "serve.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {serve}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log=log)
        queries = np.load(tmp_path / "data" / "queries.npy")
        with Client(url) as client:
            hits = client.search("docs", queries[0], k=10, include=["payload"])
        assert [h.id for h in hits] == result["ids"][0].tolist()
        assert hits[0].payload is not None and hits[0].payload["title"].startswith("document ")
    finally:
        stop_process(proc)
