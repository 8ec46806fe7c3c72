"""Fixtures shared by the tests (helpers live in configrepo.py, clirun.py, gate.py...)."""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from configrepo import CliResult, Workspace
from gate import Gate
from lanes import ModuleLanes, SecondsRecorder
from system_support import fake_root
from xdist.remote import Producer

from reconciler.system.local import LocalSystem

# Data, not tests: pytest need not walk their 300-odd folders in every worker.
collect_ignore = ["scenarios", "cases"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Two workers per core for `-n auto`: a third of the suite's time is tests waiting on
    processes they started (agents, daemons, pushers, hooks), and a waiting worker leaves
    its core to another. PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return 2 * len(os.sched_getaffinity(0))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-module-seconds", action="store_true",
                     help="write each test module's seconds into tests/module_seconds.json, "
                          "which the workers' shares are balanced on (lanes.py)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--record-module-seconds") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(SecondsRecorder(), "module-seconds")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> ModuleLanes | None:
    """Whole modules per worker, heaviest first, for the default `--dist worksteal`."""
    return ModuleLanes(config, log) if config.getvalue("dist") == "worksteal" else None


def _process_state() -> dict[str, object]:
    return {"SIGTERM": signal.getsignal(signal.SIGTERM),
            "SIGINT": signal.getsignal(signal.SIGINT), "gc": gc.isenabled(), "cwd": os.getcwd(),
            **{f"${key}": value for key, value in os.environ.items()
               if key != "PYTEST_CURRENT_TEST"}}  # pytest's own, set for each phase


@pytest.fixture(autouse=True)
def _leaves_the_process_as_found() -> Iterator[None]:
    """Commands run in this process: none may leave signal handlers, a disabled garbage
    collector, another working directory or environment behind for the next test."""
    before = _process_state()
    yield
    after = _process_state()
    changed = {key: (before.get(key), after.get(key)) for key in before.keys() | after.keys()
               if before.get(key) != after.get(key)}
    assert not changed, f"the test changed process-wide state (before, after): {changed}"


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
def root(tmp_path: Path) -> Path:
    """A fake node root with /etc in it (modules that need another kind define their own)."""
    return fake_root(tmp_path)


@pytest.fixture
def system(root: Path) -> LocalSystem:
    """The LocalSystem of `root`."""
    return LocalSystem(str(root))


@pytest.fixture
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private HOME and no system git config for the test (returns the HOME)."""
    from gitutil_repo import isolate_git

    home = tmp_path / "home"
    home.mkdir()
    isolate_git(monkeypatch, home)
    return home


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """A gate for a command to wait at; opened at teardown so no command waits forever."""
    made = Gate(tmp_path / "gate")
    yield made
    made.open()
