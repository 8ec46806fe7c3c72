"""NodeLock across real processes: waiting, timing out with the holder named, dying holders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import RetryLater
from reconciler.lock import LockHeld, NodeLock

REPO = Path(__file__).resolve().parents[1]

HOLDER = """
import sys
from reconciler.lock import NodeLock
lock = NodeLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def start_holder(lock_path: Path) -> subprocess.Popen[str]:
    """A separate Python process that takes the lock, says so, and holds it until its
    stdin is closed (`release`)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    """Let the holder release the lock and exit."""
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=30)


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = start_holder(lock_path)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_waiter_out_of_time_fails_naming_the_holder(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockHeld) as caught:
        NodeLock(lock_path).acquire(wait=0.1)
    message = str(caught.value)
    assert f"pid {holder.pid}" in message
    assert "reconciler.lock" in message, "the holder's command line is shown"
    assert str(lock_path) in message
    assert isinstance(caught.value, RetryLater)


def test_a_waiter_keeps_trying_until_asked_to_stop(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(LockHeld) as caught:
        NodeLock(lock_path, wait=3600, should_stop=should_stop).acquire()
    assert len(asked) == 3
    assert f"pid {holder.pid}" in str(caught.value)


def test_holder_killed_with_sigkill_releases_the_lock_at_once(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = NodeLock(lock_path)
    lock.acquire(wait=0)
    try:
        note = lock.holder()
        assert note is not None and note.pid == os.getpid()
    finally:
        lock.release()


def test_waiter_gets_the_lock_when_the_holder_finishes(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    waiting = threading.Event()

    def tried_once_more() -> bool:
        waiting.set()
        return False

    lock = NodeLock(lock_path, wait=3600, should_stop=tried_once_more)
    waiter = threading.Thread(target=lock.acquire)
    waiter.start()
    try:
        assert waiting.wait(timeout=30), "the waiter never tried"
        assert not lock.held
    finally:
        release(holder)
        waiter.join(timeout=30)
    assert lock.held
    lock.release()


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
