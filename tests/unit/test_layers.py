"""The house's rules, read from every import statement of the package (type-only and function-level ones
too): no import circle between modules, and no room importing a room above it (CONTRIBUTING.md)."""

from __future__ import annotations

import ast

from ..conftest import ROOT

PACKAGE = ROOT / "retriever"
# lowest first; a room may import its own rank and those below
LAYERS = (("errors", "timing"), ("corpus", "models", "fusion"), ("index",), ("legs",), ("settings",),
          ("indexing", "search"), ("api",), ("eval",), ("serve", "integrations"), ("cli",), ("retriever",))
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, object]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _targets(module: str, node: ast.AST, modules: dict) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".")
    if node.level:
        keep = len(base) - node.level + (modules[module].name == "__init__.py")
        base = base[:keep]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    subs = [f"{prefix}.{alias.name}" for alias in node.names if f"{prefix}.{alias.name}" in modules]
    return subs if len(subs) == len(node.names) else [prefix, *subs]  # `from . import sub` imports sub


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {module: set() for module in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module] |= {t for t in _targets(module, node, modules) if t in modules and t != module}
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_room_has_a_layer():
    assert {_room(m) for m in _graph()} <= set(RANK)


def test_no_room_imports_a_room_above_it():
    upward = sorted((a, b) for a, targets in _graph().items() for b in targets if RANK[_room(b)] > RANK[_room(a)])
    assert not upward


def test_no_import_circle():
    graph, done, path = _graph(), set(), []

    def visit(module: str) -> None:
        path.append(module)
        for target in graph[module]:
            assert target not in path, " -> ".join([*path[path.index(target):], target])
            if target not in done:
                visit(target)
        path.pop()
        done.add(module)

    for module in graph:
        if module not in done:
            visit(module)
