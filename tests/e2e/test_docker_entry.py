"""The Docker image's commands, run outside Docker (no engine runs here).

The indexer command comes from docker/compose.yaml, the server command and the health check
from docker/Dockerfile; paths are moved under a temporary folder and the port to a free one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glint.client import AuthenticationError, Client

from testkit import free_port, run_glint

ROOT = Path(__file__).resolve().parents[2]


def _compose_command(service: str) -> list[str]:
    text = (ROOT / "docker" / "compose.yaml").read_text()
    block = text.split(f"\n  {service}:\n", 1)[1]
    match = re.search(r"command: (\[.*?\])", block, re.S)
    assert match, f"no command for {service}"
    raw = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", match.group(1))
    return json.loads(raw)


def _compose_healthcheck(service: str) -> list[str]:
    text = (ROOT / "docker" / "compose.yaml").read_text()
    block = text.split(f"\n  {service}:\n", 1)[1]
    assert "GLINT_API_KEYS: ${GLINT_API_KEYS:?" in block  # the keys are required
    match = re.search(r"healthcheck:\s*\n\s*test: (\[.*?\])\s*\n", block, re.S)
    assert match, f"no healthcheck for {service}"
    return json.loads(match.group(1))


def _dockerfile_exec(prefix: str) -> list[str]:
    text = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^" + prefix + r"\s+(\[.*?\])\s*$", text, re.M)
    assert match, prefix
    return json.loads(match.group(1))


@pytest.mark.slow
def test_indexer_then_server_with_keys(tmp_path: Path, data, glint_serve) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "indexes").mkdir()
    np.save(tmp_path / "input" / "vectors.npy", data(1000, 32))

    def relocate(argv: list[str]) -> list[str]:
        return [
            a.replace("/input", str(tmp_path / "input")).replace(
                "/indexes", str(tmp_path / "indexes")
            )
            for a in argv
        ]

    build = relocate(_compose_command("indexer"))
    assert build[0] == "build"
    run_glint(*build)

    serve = relocate(_dockerfile_exec("CMD"))
    assert serve[0] == "serve" and "0.0.0.0" in serve  # reachable from outside the container
    port = free_port()
    serve[serve.index("--port") + 1] = str(port)
    keys = "read reader-key-0001, admin admin-key-0001"
    url = glint_serve(*serve[1:], env={"GLINT_API_KEYS": keys}, port=port)

    healthcheck = _dockerfile_exec("HEALTHCHECK.*?CMD")
    proc = subprocess.run(healthcheck, env={**os.environ, "GLINT_PORT": str(port)}, timeout=30)
    assert proc.returncode == 0
    compose_check = _compose_healthcheck("server")
    assert compose_check[0] == "CMD"
    proc = subprocess.run(
        compose_check[1:], env={**os.environ, "GLINT_PORT": str(port)}, timeout=30
    )
    assert proc.returncode == 0
    down = subprocess.run(compose_check[1:], env={**os.environ, "GLINT_PORT": str(free_port())})
    assert down.returncode != 0  # nothing listening there: unhealthy

    with Client(url, api_key="reader-key-0001") as client:
        assert client.info("docs").count == 1000
    with Client(url, retries=0) as anonymous, pytest.raises(AuthenticationError):
        anonymous.collections()
