"""Imports run one way: index <- service -> client.models; the client stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "index": "glint.index",
    "service": "glint.service",
    "client": "glint.client",
    "loadtest": "glint.loadtest",
}


def _imports(package_dir: str) -> dict[str, set[str]]:
    """Absolute module names imported by each module of a top-level folder."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package_dir).rglob("*.py")):
        rel = path.relative_to(ROOT / package_dir).with_suffix("")
        module = ".".join([PACKAGES[package_dir], *rel.parts]).removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parent = module.split(".")
                    if path.name != "__init__.py":
                        parent = parent[:-1]
                    base = ".".join(parent[: len(parent) - node.level + 1])
                    names.add(f"{base}.{node.module}" if node.module else base)
                else:
                    names.add(node.module or "")
        found[str(path.relative_to(ROOT))] = names
    return found


def _offenders(package_dir: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path} imports {name}"
        for path, names in _imports(package_dir).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_index_imports_neither_service_nor_client() -> None:
    assert _offenders("index", ("glint.service", "glint.client", "fastapi", "httpx")) == []


def test_client_imports_neither_index_nor_service() -> None:
    heavy = ("glint.index", "glint.service", "faiss", "numba", "fastapi", "starlette", "uvicorn")
    assert _offenders("client", heavy) == []


def test_loadtest_talks_http_only() -> None:
    """The load generator sees the server through HTTP (and the wire models) only."""
    assert _offenders("loadtest", ("glint.index", "glint.service", "fastapi")) == []
    uses = {
        name
        for names in _imports("loadtest").values()
        for name in names
        if name.startswith("glint.client")
    }
    assert uses <= {"glint.client.models"}


def test_service_uses_only_the_client_models() -> None:
    uses = {
        name
        for names in _imports("service").values()
        for name in names
        if name.startswith("glint.client")
    }
    assert uses <= {"glint.client.models"}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("glint.client", ("faiss", "numba", "fastapi", "starlette", "uvicorn", "glint.index")),
        ("glint.index", ("fastapi", "starlette", "uvicorn", "httpx", "glint.service")),
        # registering `glint loadtest` on the parser stays light
        ("glint.loadtest.cli", ("httpx", "matplotlib", "numpy", "glint.index", "glint.service")),
        (
            "glint.loadtest.runner",
            ("fastapi", "uvicorn", "matplotlib", "glint.index", "glint.service"),
        ),
    ],
)
def test_runtime_import_footprint(module: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r} "
        f"or any(m.startswith(f + '.') or m == f for f in {forbidden!r}))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
