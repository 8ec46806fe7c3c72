"""NodeLock across real processes: waiting, timing out with the holder named, dying holders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import RetryLater
from reconciler.lock import LockHeld, NodeLock

REPO = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
from reconciler.lock import NodeLock
lock = NodeLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def start_holder(lock_path: Path, hold: float) -> subprocess.Popen[str]:
    """A separate Python process that takes the lock, says so, and holds it `hold` seconds."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = start_holder(lock_path, 30)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_second_process_waits_then_fails_naming_the_holder(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(LockHeld) as caught:
        NodeLock(lock_path).acquire(wait=0.3)
    assert time.monotonic() - started >= 0.3
    message = str(caught.value)
    assert f"pid {holder.pid}" in message
    assert "reconciler.lock" in message, "the holder's command line is shown"
    assert str(lock_path) in message
    assert isinstance(caught.value, RetryLater)


def test_holder_killed_with_sigkill_releases_the_lock_at_once(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with NodeLock(lock_path) as lock:
        assert lock.held
        assert time.monotonic() - started < 0.2
        note = lock.holder()
        assert note is not None and note.pid == os.getpid()


def test_waiter_gets_the_lock_when_the_holder_finishes(lock_path: Path) -> None:
    process = start_holder(lock_path, 0.3)
    try:
        with NodeLock(lock_path, wait=10) as lock:
            assert lock.held
    finally:
        process.wait()


def test_lock_is_released_when_the_with_block_ends(lock_path: Path) -> None:
    first = NodeLock(lock_path)
    with first, pytest.raises(LockHeld):
        NodeLock(lock_path).acquire(wait=0)
    assert not first.held
    assert first.holder() is None, "the holder note is cleared on release"
    with NodeLock(lock_path) as again:
        assert again.held


def test_lock_file_is_never_deleted(lock_path: Path) -> None:
    with NodeLock(lock_path):
        inode = lock_path.stat().st_ino
    assert lock_path.stat().st_ino == inode
