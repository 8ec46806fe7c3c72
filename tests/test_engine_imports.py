"""The plan's vocabulary (changes, drift, what probing sees) sits below actions and apply,
lazy imports inside functions included (that the graph has no cycle at all is
test_code_quality.py's)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
LEAVES = ("reconciler.plan.change", "reconciler.plan.probe")
ABOVE_LEAVES = ("reconciler.actions", "reconciler.apply", "reconciler.plan.build")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's reconciler imports, wherever in the file they are written."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        for dep in graph[pending.pop()] - seen:
            seen.add(dep)
            pending.append(dep)
    return seen


def test_changes_and_drift_import_nothing_from_actions_or_apply() -> None:
    graph = _imports(_modules())

    for leaf in LEAVES:
        above = {m for m in _reachable(graph, leaf) if m.startswith(ABOVE_LEAVES)}
        assert above == set(), f"{leaf} imports {sorted(above)}"
