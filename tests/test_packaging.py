"""The installed distributions: namespace mapping, entry points, py.typed markers, and the
benchmark harness (glint-vector-bench, bench/) kept out of the runtime one (glint-vector).

CI also runs this file in a virtualenv made with a plain (non-editable)
``pip install .[dev] ./bench``, with GLINT_EXPECT_INSTALL=wheel: then the modules must come
from site-packages, and the installed files of each distribution are checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import distribution, entry_points, version
from pathlib import Path

import pytest

import glint.bench
import glint.client
import glint.index
import glint.service

ROOT = Path(__file__).resolve().parent.parent
WHEEL = os.environ.get("GLINT_EXPECT_INSTALL") == "wheel"


def test_namespace_maps_top_level_folders() -> None:
    modules = (glint.index, glint.service, glint.client, glint.bench)
    files = {m.__name__: Path(m.__file__ or "") for m in modules}
    if WHEEL:
        for name, path in files.items():
            assert "site-packages" in path.parts, f"{name} imported from {path}"
    else:
        assert files["glint.index"] == ROOT / "index" / "__init__.py"
        assert files["glint.client"] == ROOT / "client" / "__init__.py"
        # a second editable install, of bench/'s own distribution, in the same namespace
        assert files["glint.bench"] == ROOT / "bench" / "__init__.py"
    for module in (glint.index, glint.client):
        assert (Path(module.__file__ or "").parent / "py.typed").exists()


def _run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which(name, path=str(Path(sys.executable).parent))
    assert script is not None, f"the {name} entry point is not installed"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=60)


def test_console_script_runs() -> None:
    out = _run_script("glint", "--help")
    assert out.returncode == 0
    for command in ("build", "search", "info", "serve", "loadtest"):
        assert command in out.stdout


def test_each_command_comes_from_its_distribution() -> None:
    """`glint` is the runtime's, `glint-bench` the harness's."""
    owners = {
        ep.name: ep.dist.name if ep.dist else None
        for ep in entry_points(group="console_scripts")
        if ep.name in ("glint", "glint-bench")
    }
    assert owners == {"glint": "glint-vector", "glint-bench": "glint-vector-bench"}
    out = _run_script("glint-bench", "--help")
    assert out.returncode == 0
    for command in ("run", "multivec", "service", "report"):
        assert command in out.stdout


@pytest.mark.skipif(not WHEEL, reason="an editable install lists no package files")
def test_the_runtime_distribution_holds_no_harness() -> None:
    """The runtime wheel has glint's packages and not glint/bench, which the harness's has."""
    runtime = [str(f) for f in distribution("glint-vector").files or []]
    harness = [str(f) for f in distribution("glint-vector-bench").files or []]
    for package in ("index", "service", "client", "loadtest", "wire"):
        assert f"glint/{package}/__init__.py" in runtime
    assert [f for f in runtime if f.startswith("glint/bench/")] == []
    assert "glint/bench/__init__.py" in harness
    assert [f for f in harness if f.startswith("glint/") and not f.startswith("glint/bench/")] == []


def test_version_comes_from_the_distribution() -> None:
    """The version the client sends and the index manifests record is the installed
    distribution's, glint-vector's."""
    from glint.index.storage import glint_version

    assert glint.client.__version__ == version("glint-vector") == glint_version()


def test_public_names() -> None:
    assert callable(glint.index.build_index) and callable(glint.index.load_index)
    assert {"Client", "AsyncClient"} <= set(glint.client.__all__)
