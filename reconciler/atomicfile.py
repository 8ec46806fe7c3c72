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
from datetime import UTC, datetime
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`, creating its directory (mode 0700) if needed."""
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
