"""Build something once per test session, whichever pytest-xdist workers need it.

A module-scoped fixture is built again in every worker that runs one of the module's
tests: each module starts whole on one worker (lanes.py), but an idle worker may steal
its last tests, and several modules need the same things (the example fleet, node
images). For what tests only read once built (a published fleet, a reports server that
refuses every push), `built_once` lets the first worker build it under a lock in the
session's shared temporary directory; the others wait for it and read the same files.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def built_once(factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], dict[str, str]]) -> tuple[Path, dict[str, str]]:
    """The directory `build` filled for `name` in this session, and what it returned.
    A build that raised is tried again by the next worker that asks."""
    shared = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's directory, above each worker's own
    directory = shared / name
    result = shared / f"{name}.json"
    lock = os.open(shared / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            result.write_text(json.dumps(build(directory)))
        built: dict[str, str] = json.loads(result.read_text())
        return directory, built
    finally:
        os.close(lock)
