"""What several test modules build the same way, built once per test session and copied
for each use: the example fleet as `reconciler init` writes it (0.7 CPU-s each time),
and the node images of daemon_node.py (up to 2 CPU-s).

A session is every xdist worker of one pytest run: they share the parent of their
base temporary directories, and the first worker to ask builds under a lock while the
others wait for it. A build that fails is tried again by the next test that asks.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import reconciler
from configrepo import git_env


def built_once(factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], object]) -> Path:
    """The directory `name` of this session, which build(directory) filled the first time
    it was asked for. Nothing may write to it afterwards: copy what a test changes."""
    base = factory.getbasetemp()
    session = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shelf = session / "built-once"
    shelf.mkdir(exist_ok=True)
    where, done = shelf / name, shelf / f"{name}.done"
    with (shelf / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(where, ignore_errors=True)  # what a build that failed left
            where.mkdir()
            build(where)
            done.touch()
    return where


def example_fleet(factory: pytest.TempPathFactory, target: Path) -> Path:
    """A config repo at `target` holding the example fleet, first commit on main, as
    `reconciler init target` makes it (a copy of this session's)."""
    example = built_once(factory, "example-fleet", _init_example) / "fleet"
    copy(example, target)
    return target


def _init_example(where: Path) -> None:
    (where / "home").mkdir()
    done = reconciler(["init", where / "fleet"], env=git_env(where / "home"), cwd=where)
    if done.returncode != 0:
        raise AssertionError(f"reconciler init exited {done.returncode}:\n"
                             f"{done.stdout}{done.stderr}")


def copy(source: Path, target: Path) -> None:
    """`cp -a source target`: owners, modes, times and links as they are."""
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["cp", "-a", "--", str(source), str(target)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"cp -a {source} {target} failed: {done.stderr}")
