"""The example fleet as `reconciler init` writes it (0.7 CPU-s each time), built once per
test session (session_build.py) and copied for every test module that plans, renders or
builds nodes from it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from clirun import reconciler
from configrepo import git_env
from session_build import built_once


def example_fleet(factory: pytest.TempPathFactory, target: Path) -> Path:
    """A config repo at `target` holding the example fleet, first commit on main, as
    `reconciler init target` makes it (a copy of this session's)."""
    shared, _ = built_once(factory, "example-fleet", _init_example)
    copy(shared / "fleet", target)
    return target


def _init_example(where: Path) -> dict[str, str]:
    (where / "home").mkdir()
    done = reconciler(["init", where / "fleet"], env=git_env(where / "home"), cwd=where)
    if done.returncode != 0:
        raise AssertionError(f"reconciler init exited {done.returncode}:\n"
                             f"{done.stdout}{done.stderr}")
    return {}


def copy(source: Path, target: Path) -> None:
    """`cp -a source target`: owners, modes, times and links as they are."""
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["cp", "-a", "--", str(source), str(target)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"cp -a {source} {target} failed: {done.stderr}")
