"""Letting go of the files a run replaced, several at once.

A rename over an old file takes away its last name, and the kernel then frees its inode
and blocks right there, inside the rename: about 1 ms a file on this ext4, waiting on the
journal, and up to 6 ms while the disk is busy, one file after the other. A run that
holds the old file open across the rename moves that work to the close of its fd, which
RELEASERS threads do side by side while the run goes on. Nothing about the new file
waits for it: the old one has no name left by then.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress

RELEASERS = 8  # closes at once (each lets go of the interpreter)
HELD_LIMIT = 256  # old files held open at most (fds are finite); past it, the run waits


def _close(fd: int) -> None:
    with suppress(OSError):
        os.close(fd)


class Releaser:
    """Closes the fds of replaced files in threads; `finish` waits until all are closed."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._closing: deque[Future[None]] = deque()

    def release(self, fd: int) -> None:
        """Close `fd` (open on a file just renamed over) in the background."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(RELEASERS, thread_name_prefix="release")
        while len(self._closing) >= HELD_LIMIT:
            self._closing.popleft().result()
        self._closing.append(self._pool.submit(_close, fd))

    def finish(self) -> None:
        """Wait until every fd given to `release` is closed."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._closing.clear()
