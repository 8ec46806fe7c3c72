"""The code base stays lint-clean, strictly typed, free of import cycles, and made of
modules small enough to read: ruff and mypy --strict pass, the import graph has no cycle,
and no module (tests and benchmarks included) is over 500 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT / "reconciler"
BIN = Path(sys.executable).parent
MAX_LINES = 500


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([str(BIN / "ruff"), "check", "reconciler", "tests", "bench"],
                            cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    # The benchmarks borrow the tests' helpers, as they do at run time (sys.path).
    result = subprocess.run([str(BIN / "mypy"), "--strict", "reconciler", "tests", "bench"],
                            cwd=PROJECT, capture_output=True, text=True,
                            env={**os.environ, "MYPYPATH": str(PROJECT / "tests")})
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_graph_has_no_cycle() -> None:
    """Every import counts: at module level, inside a function (a lazy import only hides
    a cycle), and for type checking only (the modules still depend on each other)."""
    found = _cycles(import_graph())
    assert not found, "\n".join(" <-> ".join(sorted(cycle)) for cycle in found)


def test_no_module_is_over_500_lines() -> None:
    """The tests and the benchmarks too: a test module is read as a specification."""
    lines = {str(path.relative_to(PROJECT)): len(path.read_text().splitlines())
             for folder in (PACKAGE, PROJECT / "tests", PROJECT / "bench")
             for path in folder.rglob("*.py")}
    assert {name: count for name, count in lines.items() if count > MAX_LINES} == {}


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: set(_imported(name, path, modules)) for name, path in modules.items()}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(name: str, path: Path, modules: Mapping[str, Path]) -> Iterator[str]:
    """The package modules `path` imports anywhere in its code (`from a import b` names
    module a.b when that is a module, else a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    yield submodule
                elif base in modules:
                    yield base


def _cycles(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or through others."""
    reach = {name: _reachable(graph, name) for name in graph}
    groups = {frozenset(other for other in reach[name] if name in reach[other])
              for name in graph if name in reach[name]}
    return sorted((set(group) for group in groups), key=sorted)


def _reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    """Every module reached from `start` by following one or more imports."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen
