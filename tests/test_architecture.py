"""The layout holds: no import cycles anywhere, Dagster only in `orchestration`, docs name real modules."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from dataflux_pipelines.settings import REPO_ROOT

PACKAGES = ("dataflux_pipelines", "dataflux_api")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Project modules imported anywhere in the file (module level or inside functions), with line numbers."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [(base, node.lineno)] + [(f"{base}.{a.name}", node.lineno) for a in node.names]
        else:
            continue
        for name, line in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name, line


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, _ in _imports(module, path, known):
            # A package's __init__ is imported on the way to its modules; that is not a dependency on them.
            if not module.startswith(target + "."):
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_there_is_no_import_cycle_anywhere() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_only_the_orchestration_package_imports_dagster() -> None:
    offenders = []
    for module, path in _modules().items():
        if module.startswith("dataflux_pipelines.orchestration"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in names):
                offenders.append(f"{module}:{node.lineno}")
    # The CLI and doctor start Dagster instances and runs for the user: they go through orchestration
    # for definitions, but may open an instance themselves.
    allowed = re.compile(r"^dataflux_api\.(doctor|cli\.[a-z_]+):")
    assert [o for o in offenders if not allowed.match(o)] == []


def test_the_pure_core_never_imports_the_api_or_orchestration() -> None:
    graph = _graph()
    core = [
        m
        for m in graph
        if m.startswith("dataflux_pipelines") and not m.startswith("dataflux_pipelines.orchestration")
    ]
    bad = {
        m: sorted(t for t in graph[m] if t.startswith(("dataflux_api", "dataflux_pipelines.orchestration")))
        for m in core
    }
    assert {m: t for m, t in bad.items() if t} == {}


def test_every_module_the_architecture_doc_names_exists() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:dataflux_pipelines|dataflux_api)(?:[./][a-z_]+)*)(?:\.py)?`", text))
    assert named, "docs/architecture.md names no modules"
    missing = []
    for name in sorted(named):
        path = REPO_ROOT / name.removesuffix(".py").replace(".", "/")
        if not (path.with_suffix(".py").exists() or (path / "__init__.py").exists() or path.is_dir()):
            missing.append(name)
    assert missing == []
