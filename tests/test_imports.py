"""Imports run one way: index <- service -> client.models, and everything -> wire; the client
and the wire stay light."""

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
    "wire": "glint.wire",
}
# glint.wire is shared by the service, the client and the load generator: it imports none of them
WIRE_FORBIDDEN = (
    *("glint.index", "glint.service", "glint.client", "glint.loadtest"),
    *("httpx", "orjson", "fastapi", "starlette", "uvicorn", "faiss", "numba"),
)


def _sources(folder: str) -> list[Path]:
    """The modules of a top-level folder; not what a non-editable install of bench/ (its own
    distribution, whose folder is the package) leaves behind in bench/build."""
    return sorted(
        path
        for path in (ROOT / folder).rglob("*.py")
        if "build" not in path.relative_to(ROOT / folder).parts[:-1]
    )


def _imports(package_dir: str) -> dict[str, set[str]]:
    """Absolute module names imported by each module of a top-level folder."""
    found: dict[str, set[str]] = {}
    for path in _sources(package_dir):
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


@pytest.mark.parametrize("package_dir", sorted(PACKAGES))
def test_the_runtime_does_not_import_the_harness(package_dir: str) -> None:
    """glint.bench is a distribution of its own (bench/pyproject.toml), not in the runtime's."""
    assert _offenders(package_dir, ("glint.bench",)) == []


def test_index_imports_neither_service_nor_client() -> None:
    """Of the other glint packages the engine imports only glint.wire (the filter language
    it shares with the client and the server)."""
    forbidden = ("glint.service", "glint.client", "glint.loadtest", "fastapi", "httpx")
    assert _offenders("index", forbidden) == []


def test_wire_imports_only_numpy_pydantic_and_the_standard_library() -> None:
    assert _offenders("wire", WIRE_FORBIDDEN) == []
    third_party = {
        name.split(".")[0]
        for names in _imports("wire").values()
        for name in names
        if not name.startswith("glint.wire") and name.split(".")[0] not in sys.stdlib_module_names
    }
    assert third_party <= {"numpy", "pydantic"}


def test_client_imports_neither_index_nor_service() -> None:
    heavy = ("glint.index", "glint.service", "faiss", "numba", "fastapi", "starlette", "uvicorn")
    assert _offenders("client", heavy) == []


def test_loadtest_talks_http_only() -> None:
    """The load generator sees the server through HTTP only: its requests are built by the
    client's I/O-free core, with the wire's formats."""
    assert _offenders("loadtest", ("glint.index", "glint.service", "fastapi")) == []
    uses = {
        name
        for names in _imports("loadtest").values()
        for name in names
        if name.startswith("glint.client")
    }
    assert uses <= {"glint.client._base", "glint.client.models"}


def test_service_uses_only_the_client_models() -> None:
    """Of the client, the service uses the wire models only (glint.wire it may use freely)."""
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
        ("glint.wire", WIRE_FORBIDDEN),
        ("glint.index", ("fastapi", "starlette", "uvicorn", "httpx", "glint.service")),
        # registering `glint loadtest` on the parser stays light
        ("glint.loadtest.cli", ("httpx", "matplotlib", "numpy", "glint.index", "glint.service")),
        # the `glint` command runs on the base install: the index and server load on demand
        (
            "glint.service.cli",
            ("faiss", "numba", "fastapi", "starlette", "uvicorn", "httpx", "glint.index"),
        ),
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


def _module_graph() -> dict[str, set[str]]:
    """Every module of glint's packages and the glint modules it imports, anywhere in its
    text (inside functions too): ``from P import n`` counts as importing ``P.n`` when that is
    a module, else ``P``."""
    files = {}
    for folder, package in {**PACKAGES, "bench": "glint.bench"}.items():
        for path in _sources(folder):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            files[".".join([package, *rel.parts]).removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in files)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    edges.add(target if target in files else source)
        graph[module] = {target for target in edges if target in files}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or with a self-import."""
    order: list[str] = []
    seen: set[str] = set()
    for start in graph:  # iterative DFS: modules by finishing time
        stack = [(start, iter(sorted(graph[start])))] if start not in seen else []
        seen.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                order.append(node)
                stack.pop()
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(sorted(graph[child]))))
    reverse: dict[str, set[str]] = {node: set() for node in graph}
    for node, targets in graph.items():
        for target in targets:
            reverse[target].add(node)
    found, assigned = [], set()
    for root in reversed(order):
        if root in assigned:
            continue
        component, todo = [], [root]
        assigned.add(root)
        while todo:
            node = todo.pop()
            component.append(node)
            for nxt in reverse[node] - assigned:
                assigned.add(nxt)
                todo.append(nxt)
        if len(component) > 1 or root in graph[root]:
            found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}, "b": set()}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package() -> None:
    graph = _module_graph()
    assert "glint.index.registry" in graph["glint.index.flat"]  # the walk does see imports
    assert _cycles(graph) == []
