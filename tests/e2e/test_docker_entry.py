"""The Docker image's pieces, run outside Docker (fast, on every machine).

docker/smoke.sh runs the real image under a real engine; these check the same commands
without one: the compose indexer's entry point (docker/index-input.sh), the image's serve
command, its health check (docker/healthcheck.py), and that the Dockerfile and .dockerignore
carry every package the runtime distribution maps (a missing one broke `pip install` in the
image once, and nothing caught it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glint.client import AuthenticationError, Client

from testkit import GLINT, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _dockerfile_exec(prefix: str) -> list[str]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^" + prefix + r"\s+(\[.*?\])\s*$", text, re.M)
    assert match, prefix
    return json.loads(match.group(1))


def _compose_environment(service: str) -> dict[str, str]:
    """The service's environment in docker/compose.yaml, with each ${VAR:-default} resolved
    to its default."""
    text = (DOCKER / "compose.yaml").read_text()
    block = text.split(f"\n  {service}:\n", 1)[1].split("\n  # ", 1)[0]
    env_block = block.split("    environment:\n", 1)[1]
    env = {}
    for line in env_block.splitlines():
        match = re.fullmatch(r"      (\w+): (.*)", line)
        if not match:
            break
        env[match[1]] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", match[2]).strip('"')
    return env


def _index_input(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """docker/index-input.sh with the compose indexer's environment, /input and /indexes
    moved under tmp_path, and this environment's `glint` on PATH."""
    env = {
        **os.environ,
        **_compose_environment("indexer"),
        "GLINT_INPUT_DIR": str(tmp_path / "input"),
        "GLINT_OUT": str(tmp_path / "indexes" / "docs"),
        "PATH": f"{Path(GLINT).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["sh", str(DOCKER / "index-input.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_runtime_packages_reach_the_image() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(project["tool"]["setuptools"]["package-dir"].values())
    dockerfile = (DOCKER / "Dockerfile").read_text()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for folder in folders:
        assert f"COPY {folder} ./{folder}\n" in dockerfile, f"the Dockerfile misses {folder}/"
        assert f"!{folder}/" in ignore, f".dockerignore keeps {folder}/ out of the context"
    assert "bench" not in folders  # the harness is not part of the runtime distribution
    for helper in ("healthcheck.py", "index-input.sh"):
        assert f"COPY docker/{helper} " in dockerfile and f"!docker/{helper}" in ignore


@pytest.mark.slow
def test_indexer_then_server_with_keys(tmp_path: Path, data, glint_serve) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "indexes").mkdir()
    vectors = data(1000, 32)
    ids = 5000 + 3 * np.arange(1000, dtype=np.int64)
    np.save(tmp_path / "input" / "vectors.npy", vectors)
    np.save(tmp_path / "input" / "ids.npy", ids)
    with open(tmp_path / "input" / "payloads.jsonl", "w") as f:
        f.writelines(json.dumps({"title": f"doc {i}"}) + "\n" for i in range(1000))

    built = _index_input(tmp_path)
    assert built.returncode == 0, built.stderr
    line = json.loads(built.stdout)
    assert (line["count"], line["metric"]) == (1000, "cos")
    assert line["spec"].startswith("hnsw")

    serve = _dockerfile_exec("CMD")
    assert serve[:2] == ["serve", "/indexes/docs"] and "0.0.0.0" in serve  # reachable
    serve[1] = str(tmp_path / "indexes" / "docs")
    port = free_port()
    serve[serve.index("--port") + 1] = str(port)
    keys = "read reader-key-0001, admin admin-key-0001"
    url = glint_serve(*serve[1:], env={"GLINT_API_KEYS": keys}, port=port)

    healthcheck = _dockerfile_exec("HEALTHCHECK.*?CMD")
    assert healthcheck == ["python", "/opt/glint/healthcheck.py"]
    check = [sys.executable, str(DOCKER / "healthcheck.py")]
    assert subprocess.run(check, env={**os.environ, "GLINT_PORT": str(port)}).returncode == 0
    down = subprocess.run(
        check, env={**os.environ, "GLINT_PORT": str(free_port())}, capture_output=True
    )
    assert down.returncode != 0  # nothing listening there: unhealthy

    with Client(url, api_key="reader-key-0001") as client:
        hits = client.search("docs", vectors[7], k=1, include=["payload"])
        assert hits[0].id == ids[7] and hits[0].payload == {"title": "doc 7"}
    with Client(url, retries=0) as anonymous, pytest.raises(AuthenticationError):
        anonymous.collections()


def test_indexer_without_ids_or_payloads_and_with_arguments(tmp_path: Path, data) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "indexes").mkdir()
    np.save(tmp_path / "input" / "vectors.npy", data(300, 8))
    built = _index_input(tmp_path)
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["count"] == 300

    # With arguments it is plain `glint ARGS` (`compose run --rm indexer build ...`).
    other = tmp_path / "indexes" / "other"
    args = ["build", str(tmp_path / "input" / "vectors.npy"), "--index", "flat"]
    ran = _index_input(tmp_path, *args, "--metric", "l2", "--out", str(other))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["spec"].startswith("flat") and (other / "manifest.json").exists()

    missing = _index_input(tmp_path / "nowhere")
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "vectors.npy" in missing.stderr
