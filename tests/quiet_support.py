"""Shared by the quiet cycle's tests: a node applied from a config repo, and a count of
the runs that compiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_quiet_cycle import full

from reconciler.compile import compiler


def applied_node(tmp_path: Path, repo: Path) -> Path:
    """A node root after a full apply of `repo`: as configured, its quiet record kept."""
    path = tmp_path / "node"
    path.mkdir()
    assert full(repo, path) == 2
    return path


def count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runs that load the fleet (compile) from now on, by snapshot label."""
    seen: list[str] = []
    real = compiler.load_fleet

    def counting(snapshot: Any) -> Any:
        seen.append(snapshot.label)
        return real(snapshot)

    monkeypatch.setattr(compiler, "load_fleet", counting)
    return seen


def paths_passed(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[str]:
    """The path (second argument) of every call of `owner.name` from now on; each call
    still made."""
    seen: list[str] = []
    real = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return seen
