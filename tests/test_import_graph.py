"""agentd's import graph: no cycles, and production code never imports the simulator or the
benchmarks (only the entry points that run them may: cli, demo, __main__)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "agentd"
TEST_CODE = ("agentd.sim", "agentd.bench")
ENTRY_POINTS = ("agentd.cli", "agentd.demo", "agentd.__main__")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        return [base] + [f"{base}.{alias.name}" for alias in node.names]
    return []


def import_graph() -> dict[str, set[str]]:
    """module -> the agentd modules it imports (anywhere in it, lazy imports included)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            for imported in _targets(node, package):
                target = imported
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_production_code_never_imports_the_simulator_or_benchmarks() -> None:
    bad = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if not module.startswith((*TEST_CODE, *ENTRY_POINTS))
        for target in targets
        if target.startswith(TEST_CODE)
    ]
    assert bad == []


def test_the_checks_can_fail() -> None:
    """The detector sees a planted cycle and a planted production -> sim import."""
    planted = {"agentd.a": {"agentd.b"}, "agentd.b": {"agentd.a"}, "agentd.c": set()}
    assert cycles(planted) == [["agentd.a", "agentd.b"]]
    graph = import_graph()
    assert "agentd.sim.stack" in graph["agentd.sim.harness"]  # sim code is seen, and allowed
    assert any(t.startswith("agentd.conversation") for t in graph["agentd.service.kiosk"])
