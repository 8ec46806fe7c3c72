"""What a run reads its config from: the `Source` protocol, and the working tree (or one
commit of it) that `apply` and `audit` run from. `run` and the agent use `GitSource`
(choice.py), the node's cache of the config remote."""

from __future__ import annotations

from typing import Protocol

from reconciler import quiet
from reconciler.errors import ReconcilerError
from reconciler.record import report
from reconciler.source.snapshot import Snapshot, open_snapshot


class Source(Protocol):
    """Where a run's config comes from, and what the run report says about it."""

    @property
    def commit(self) -> str | None:
        """The commit the run is tied to (None: a working tree, or not chosen yet)."""

    def open(self) -> Snapshot:
        """The config files to run from (chosen on the first call)."""

    def fall_back(self, error: ReconcilerError) -> bool:
        """A step refused what `open` gave: True when the source moved to another commit
        to try instead, False when the run is refused."""

    def worked(self) -> None:
        """The run enforced what `open` gave."""

    def reverted(self, reason: str) -> None:
        """The run applied what `open` gave and its health checks made it undo that: the
        commit is refused for this node like one that did not compile."""

    def describe(self) -> report.SourceReport | None:
        """The report's account of the source (None for a working tree)."""

    def quiet_id(self) -> str | None:
        """What identifies the config a run enforces, for the quiet cycle, taken before
        it is read; None when this source cannot tell (then the run is never quiet)."""


class WorkTreeSource:
    """The config repo as checked out (or one commit of it with `rev`), as is: nothing to
    fall back to, nothing remembered."""

    def __init__(self, repo: str, rev: str | None = None) -> None:
        self.repo = repo
        self.rev = rev
        self.commit: str | None = None
        self._fingerprint: str | None = None

    def open(self) -> Snapshot:
        self.quiet_id()  # before reading: an edit made meanwhile changes the next one
        snapshot = open_snapshot(self.repo, self.rev)
        self.commit = snapshot.revision
        return snapshot

    def fall_back(self, error: ReconcilerError) -> bool:
        return False

    def worked(self) -> None:
        return None

    def reverted(self, reason: str) -> None:
        return None

    def describe(self) -> report.SourceReport | None:
        return None

    def quiet_id(self) -> str | None:
        """The working tree's fingerprint (a --rev is not followed: it may move)."""
        if self.rev is None and self._fingerprint is None:
            self._fingerprint = quiet.worktree_fingerprint(self.repo)
        return self._fingerprint
