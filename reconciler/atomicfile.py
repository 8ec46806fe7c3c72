"""Replace one of reconciler's own files on the host (state, reports, metrics) atomically.

Readers see the old file or the new one, never a mix, even across a crash: temp file in
the same directory, fsync, rename, fsync the directory. Node files go through the
System instead (they must never follow a symlink). Reading them back never follows a
symlink either (`read_own`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from reconciler.system.durable import sync_each


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`, creating its directory (mode 0700) if needed."""
    write_atomic_all([(path, data, mode)])


def write_atomic_all(files: Sequence[tuple[str | os.PathLike[str], bytes, int]]) -> None:
    """`write_atomic` of several files (path, data, mode) together: all written and synced
    at once, then each renamed in order, then each directory synced once. Every file is
    still old or new; a crash may leave the first ones new and the last ones old. Two
    journal commits for all of them, where one after the other takes two a file."""
    written: list[tuple[str, str, int]] = []  # temp, target, open fd
    try:
        for path, data, mode in files:
            target = os.fspath(path)
            directory = os.path.dirname(target) or "."
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.",
                                        suffix=".tmp", dir=directory)
            written.append((temp, target, fd))
            write_all(fd, data)
            os.fchmod(fd, mode)
        failed = sync_each([(temp, fd) for temp, _, fd in written])
        if failed is not None:
            raise failed[1]
        for temp, target, _ in written:
            os.rename(temp, target)
    except BaseException:
        for temp, _, _ in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        raise
    finally:
        for _, _, fd in written:
            os.close(fd)
    for directory in dict.fromkeys(os.path.dirname(target) or "." for _, target, _ in written):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less than it was given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_own(path: str | os.PathLike[str]) -> bytes:
    """The bytes of one of reconciler's own files, never read through a symlink (a
    planted link must not show another file's content in an error or a report)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a symlink; refusing to follow it",
                          os.fspath(path)) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def set_aside(path: str | os.PathLike[str], now: datetime | None = None) -> Path:
    """Rename one of reconciler's own files or directories that cannot be used to
    `NAME.bad-YYYYmmddTHHMMSSZ` beside it (kept for a person to look at, never deleted);
    returns the name it now has. The caller holds the node lock."""
    source = Path(path)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = source.with_name(f"{source.name}.bad-{stamp}")
    count = 1
    while os.path.lexists(target):
        count += 1
        target = source.with_name(f"{source.name}.bad-{stamp}-{count}")
    os.rename(source, target)
    return target
