"""The installed distribution: namespace mapping, entry point, py.typed markers.

CI also runs this file in a virtualenv made with a plain (non-editable) ``pip install .``,
with GLINT_EXPECT_INSTALL=wheel: then the modules must come from site-packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import glint.client
import glint.index
import glint.service

ROOT = Path(__file__).resolve().parent.parent


def test_namespace_maps_top_level_folders() -> None:
    files = {m.__name__: Path(m.__file__ or "") for m in (glint.index, glint.service, glint.client)}
    if os.environ.get("GLINT_EXPECT_INSTALL") == "wheel":
        for name, path in files.items():
            assert "site-packages" in path.parts, f"{name} imported from {path}"
    else:
        assert files["glint.index"] == ROOT / "index" / "__init__.py"
        assert files["glint.client"] == ROOT / "client" / "__init__.py"
    for module in (glint.index, glint.client):
        assert (Path(module.__file__ or "").parent / "py.typed").exists()


def test_console_script_runs() -> None:
    script = shutil.which("glint", path=str(Path(sys.executable).parent))
    assert script is not None, "the glint entry point is not installed"
    out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("build", "search", "info", "serve", "loadtest"):
        assert command in out.stdout


def test_public_names() -> None:
    assert callable(glint.index.build_index) and callable(glint.index.load_index)
    assert {"Client", "AsyncClient"} <= set(glint.client.__all__)
