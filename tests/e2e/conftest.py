from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from testkit import free_port, poll

GLINT = str(Path(sys.executable).with_name("glint"))


def run_glint(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the `glint` command to completion; a failure shows its stderr."""
    proc = subprocess.run([GLINT, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def glint_error(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a `glint` command that must fail; returns its one-line error (no traceback)."""
    proc = subprocess.run(
        [GLINT, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def wait_ready(
    url: str, proc: subprocess.Popen[str], timeout: float = 60.0, log: Path | None = None
) -> None:
    """Poll /readyz until it answers 200, the process dies, or the time bound passes."""

    def ready() -> bool:
        if proc.poll() is not None:
            output = log.read_text() if log else (proc.stderr.read() if proc.stderr else "")
            raise RuntimeError(f"server exited with {proc.returncode}: {output}")
        try:
            return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    poll(ready, timeout=timeout, interval=0.05, what=f"{url}/readyz answering 200")


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
