"""A plan's two revisions, opened in the background.

Opening a revision is a few git processes (source/snapshot.py) that the plan only waits
for, so `reconciler plan` starts opening both before it imports what it plans with, and
the git processes run while the imports do.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reconciler.source.snapshot import Snapshot, open_snapshot


class Revisions:
    """The head and the base of `repo`, each being opened by a thread of its own."""

    def __init__(self, repo: str, base_rev: str, head_rev: str) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="open-revision")
        self._head = self._pool.submit(open_snapshot, repo, head_rev)
        self._base = self._pool.submit(open_snapshot, repo, base_rev)

    def result(self) -> tuple[Snapshot, Snapshot]:
        """(head, base) once both are open, and the threads ended (a plan then forks its
        workers); a revision that cannot be opened raises its ConfigError, the head's
        first."""
        try:
            return self._head.result(), self._base.result()
        finally:
            self._pool.shutdown()
