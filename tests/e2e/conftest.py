"""``glint serve`` as a subprocess, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit import GLINT, free_port, wait_ready


@pytest.fixture
def glint_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start ``glint serve ARGS`` as a subprocess on a free loopback port; returns its URL.
    The server's stderr goes to a file (a pipe nobody reads could fill and stall it):
    ``glint_serve.logs[url]`` is its path."""
    procs: list[subprocess.Popen[str]] = []
    logs: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("serve-logs")

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None) -> str:
        port = port or free_port()
        argv = [GLINT, "serve", *args]
        if "--port" not in args:
            argv += ["--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        logs[url] = folder / f"serve-{port}.log"
        with open(logs[url], "w") as stderr:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
                env={**os.environ, **(env or {})},
            )
        procs.append(proc)
        wait_ready(url, proc, log=logs[url])
        return url

    start.logs = logs  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
