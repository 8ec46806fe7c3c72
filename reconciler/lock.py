"""One run at a time per node: an exclusive `flock` that dies with its holder.

The kernel drops a `flock` when the holding process exits however it exits, so a
killed run never leaves a stale lock. The lock file is never deleted (deleting a
flock'ed file lets two processes lock two different inodes); it only carries a
note of who holds it, for the message the next process prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from reconciler.atomicfile import read_own
from reconciler.errors import Problem, RetryLater, UsageError

_POLL = 0.05


def _open_own(path: Path) -> int:
    """The lock file, never through a link and only when it is a plain file of its own
    (it gets truncated: a planted link or hard link must not take another file along)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError([Problem("the lock file is a symlink; refusing to follow it "
                                      "(remove it if reconciler did not make it)",
                                      str(path))]) from None
        raise
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1 or found.st_uid != os.geteuid():
        os.close(fd)
        raise UsageError([Problem("the lock file is not a plain file of the running user's "
                                  "own; refusing to use it (remove it if reconciler did not "
                                  "make it)", str(path))])
    return fd


class LockHeld(RetryLater):
    """Another process holds the node lock; try again later."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as the holder wrote it into the lock file."""

    pid: int
    cmdline: str
    since: str  # ISO 8601 UTC time the lock was taken

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.cmdline}) since {self.since}"


class NodeLock:
    """An exclusive lock on `path`, usable as `with NodeLock(path, wait=10):`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        wait: float = 0.0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.path = Path(path)
        self.wait = wait
        self.should_stop = should_stop
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self, wait: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> None:
        """Take the lock, polling up to `wait` seconds (or until `should_stop` says so: a
        SIGTERM must not sit out a long wait); raise `LockHeld` naming the holder."""
        if self._fd is not None:
            return
        limit = self.wait if wait is None else wait
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_own(self.path)
        deadline = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or (should_stop or self.should_stop)():
                    os.close(fd)
                    holder = self.holder()
                    who = str(holder) if holder else "a process that has not yet said who it is"
                    raise LockHeld(
                        [Problem(f"another run holds the node lock: {who}", str(self.path))]
                    ) from None
                time.sleep(_POLL)
        note = {
            "pid": os.getpid(),
            "cmdline": shlex.join(sys.orig_argv),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        # The note only names the holder in another run's message: a full state file
        # system that cannot take it must not stop the run.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(note).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        """Clear the holder note and drop the lock (closing the fd drops it too)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def holder(self) -> LockHolder | None:
        """The holder note in the lock file, or None when it is empty or unreadable."""
        try:
            note = json.loads(read_own(self.path) or b"null")
            return LockHolder(int(note["pid"]), str(note["cmdline"]), str(note["since"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def __enter__(self) -> NodeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
