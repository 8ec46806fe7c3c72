"""Fixtures for the config-repo tests (helpers live in configrepo.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from configrepo import CliResult, Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def make_repo(ws: Workspace) -> Callable[..., Path]:
    return ws.make_repo


@pytest.fixture
def cli(ws: Workspace) -> Callable[..., CliResult]:
    return ws.cli


@pytest.fixture
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private HOME and no system git config for the test (returns the HOME)."""
    from gitutil_repo import isolate_git

    home = tmp_path / "home"
    home.mkdir()
    isolate_git(monkeypatch, home)
    return home
