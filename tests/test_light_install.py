"""The client-only install: ``pip install glint-vector`` with no extra.

``./dev client-check`` (part of ``./dev test``) runs this file in a virtualenv made with a plain
``pip install .`` and pytest, with GLINT_EXPECT_INSTALL=client: there the installed
distributions are checked, not just the imports, and the ``glint`` command runs without the
index or the server. In the development virtualenv (every extra) the same command line is
checked with the extras made to look missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import distribution, distributions
from pathlib import Path
from typing import Any

import pytest

CLIENT_ONLY = os.environ.get("GLINT_EXPECT_INSTALL") == "client"
client_only = pytest.mark.skipif(not CLIENT_ONLY, reason="GLINT_EXPECT_INSTALL=client only")
with_extras = pytest.mark.skipif(CLIENT_ONLY, reason="needs the index and server extras")

BASE = {"numpy", "pydantic", "httpx", "orjson"}
# the index and server stacks, the formats, the plots and the harness: none comes with the client
NOT_IN_BASE = {
    *("numba", "llvmlite", "faiss-cpu", "tqdm", "threadpoolctl"),
    *("fastapi", "starlette", "uvicorn", "httptools", "uvloop", "prometheus-client"),
    *("pydantic-settings", "pyarrow", "h5py", "matplotlib", "hnswlib", "glint-vector-bench"),
}
COMMANDS = ("build", "search", "info", "loadtest", "serve")
# each command that needs an extra, with arguments it would take
NEEDS_EXTRA = [
    (["build", "vectors.npy", "--index", "hnsw", "--out", "idx"], "index"),
    (["build", "--help"], "index"),
    (["search", "idx", "--queries", "q.npy", "--k", "10", "--out", "r.npz"], "index"),
    (["info", "idx"], "index"),
    (["serve", "idx", "--port", "8123"], "server"),
    (["serve"], "server"),
    (["serve", "--help"], "server"),
    (["serve", "--port", "not-a-number", "idx"], "server"),
    (["-v", "build", "x.npy"], "index"),
]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


ROOT = Path(__file__).resolve().parent.parent


def _hint(argv: list[str], extra: str) -> str:
    command = next(arg for arg in argv if not arg.startswith("-"))
    return f"glint: error: glint {command} needs the {extra} extra: pip install 'glint-vector[{extra}]'\n"


def _glint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = shutil.which("glint", path=str(Path(sys.executable).parent))
    assert script is not None, "the glint entry point is not installed"
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [script, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env, check=False
    )


def test_base_requirements_are_the_clients() -> None:
    """glint-vector's unconditional requirements: the client's four, nothing else."""
    requires = distribution("glint-vector").requires or []
    unconditional = {
        _canonical(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
        for req in requires
        if "extra ==" not in req.partition(";")[2]
    }
    assert unconditional == BASE


# -- in the client-only virtualenv ----------------------------------------------------------


@client_only
def test_no_server_stack_is_installed() -> None:
    installed = {_canonical(d.metadata["Name"]) for d in distributions()}
    assert "glint-vector" in installed
    assert installed >= BASE
    assert sorted(installed & NOT_IN_BASE) == []


@client_only
def test_the_harness_is_not_installed() -> None:
    files = [str(f) for f in distribution("glint-vector").files or []]
    assert "glint/client/__init__.py" in files
    assert [f for f in files if f.startswith("glint/bench/")] == []
    assert importlib.util.find_spec("glint.bench") is None


@client_only
def test_the_client_works() -> None:
    import httpx
    import numpy as np
    import orjson

    from glint.client import Client, SearchResponse

    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        answer = SearchResponse(
            hits=[{"id": 7, "score": 0.5}],  # type: ignore[list-item]
            metric="ip",
            larger_is_better=True,
            took_ms=0.1,
        )
        return httpx.Response(200, json=answer.model_dump())

    with Client("http://glint.test", transport=httpx.MockTransport(handler)) as client:
        hits = client.search("docs", np.array([0.5, -1.0], dtype=np.float32), k=1)
    assert [(hit.id, hit.score) for hit in hits] == [(7, 0.5)]
    assert seen[0]["vector"] == [0.5, -1.0] and seen[0]["k"] == 1
    heavy = ("glint.index", "glint.service", "numba", "faiss", "fastapi", "uvicorn")
    assert sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy) == []


@client_only
def test_help_lists_every_command(tmp_path: Path) -> None:
    out = _glint("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for command in COMMANDS:
        assert command in out.stdout
    assert re.search(r"build +\(needs glint-vector\[index\]\)", out.stdout)


@client_only
@pytest.mark.parametrize(("argv", "extra"), NEEDS_EXTRA, ids=lambda v: " ".join(v) if v else "")
def test_commands_say_which_extra(tmp_path: Path, argv: list[str], extra: str) -> None:
    out = _glint(*argv, cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (1, "", _hint(argv, extra))


@client_only
def test_loadtest_runs(tmp_path: Path) -> None:
    """`glint loadtest` needs the base install only: it runs up to its first request (to a
    port nothing listens on) and reports the failure in one line."""
    out = _glint(
        *("loadtest", "http://127.0.0.1:9", "--collection", "docs", "--count", "1"),
        *("--timeout", "5"),
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("glint: error: ") and out.stderr.count("\n") == 1, out.stderr
    for sign in ("unexpected", "Traceback", "ModuleNotFoundError", "ImportError", "needs the"):
        assert sign not in out.stderr


# -- in the development virtualenv, with the extras made to look missing --------------------


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


@with_extras
def test_stand_ins_are_the_index_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the index extra, `glint` registers glint.index.cli's commands by name
    (service/cli.py's _INDEX_COMMANDS): the same names as with it."""
    from glint.service import cli

    full = _commands(cli.build_parser())
    monkeypatch.setattr(cli, "_installed", lambda extra: False)
    assert _commands(cli.build_parser()) == full
    assert set(COMMANDS) <= set(full)


@with_extras
@pytest.mark.parametrize(("argv", "extra"), NEEDS_EXTRA, ids=lambda v: " ".join(v) if v else "")
def test_missing_extra_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], extra: str
) -> None:
    from glint.service import cli

    monkeypatch.setattr(cli, "_installed", lambda name: False)
    assert cli.main(argv) == 1
    assert capsys.readouterr() == ("", _hint(argv, extra))


@with_extras
def test_serve_alone_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """glint-vector[index] without [server]: the index commands run, serve names its extra."""
    from glint.service import cli

    monkeypatch.setattr(cli, "_installed", lambda name: name == "index")
    assert cli.main(["info", str(tmp_path / "none")]) == 1
    assert "needs the" not in capsys.readouterr().err
    assert cli.main(["serve", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err == _hint(["serve"], "server")


@with_extras
def test_unknown_arguments_are_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from glint.service import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["info", "idx", "--bogus"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "glint: error: unrecognized arguments: --bogus\n"


@with_extras
def test_help_without_extras_lists_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from glint.service import cli

    monkeypatch.setattr(cli, "_installed", lambda name: False)
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert re.search(r"build +\(needs glint-vector\[index\]\)", out)


@with_extras
def test_extra_detection_follows_the_extras() -> None:
    """service/cli.py's _EXTRAS names, per extra, the modules whose presence says it is
    installed: exactly those of the distributions pyproject.toml's extra lists (httptools
    and uvloop, speed-ups uvicorn runs without, aside)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from glint.service import cli

    module_of = {"faiss-cpu": "faiss", "prometheus-client": "prometheus_client"}
    optional = {"httptools", "uvloop"}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    def modules(extra: str) -> set[str]:
        found: set[str] = set()
        for requirement in extras[extra]:
            name = _canonical(re.split(r"[\[<>=;!~ ]", requirement, maxsplit=1)[0])
            if name == "glint-vector":
                inner = re.search(r"\[(.*)\]", requirement)
                assert inner, requirement
                for other in inner[1].split(","):
                    found |= modules(other.strip())
            elif name not in optional:
                found.add(module_of.get(name, name.replace("-", "_")))
        return found

    assert set(cli._EXTRAS) == {"index", "server"}
    for extra, names in cli._EXTRAS.items():
        assert set(names) == modules(extra), extra
