"""The ledger of one run: the one place what changes did becomes the last-applied state.

Changes return `Effect`s instead of touching the record; the executor folds them here,
together with the records of paths found in sync and of orphans that vanished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from reconciler.plan.change import Effect, Removed, Started, Wrote
from reconciler.record.applied import Applied, AppliedState


class Ledger:
    """What this node has applied, as it stands during a run, starting from last time's."""

    def __init__(self, previous: AppliedState) -> None:
        self._previous = previous
        self._paths = dict(previous.paths)
        self._started: set[str] = set()

    @property
    def started(self) -> Set[str]:
        """Services this run has started so far."""
        return self._started

    def fold(self, effect: Effect) -> None:
        """Take in what one applied change did."""
        match effect:
            case Wrote(path, record):
                self._paths[path] = record
            case Removed(path):
                self._paths.pop(path, None)
            case Started(action):
                self._started.add(action)
            case None:
                pass

    def recorded(self, path: str) -> Applied | None:
        """The record of `path` as it stands now in the run."""
        return self._paths.get(path)

    def put_back(self, path: str, record: Applied | None) -> None:
        """Return `path` to the record it had before a change this run has undone."""
        if record is None:
            self._paths.pop(path, None)
        else:
            self._paths[path] = record

    def keep(self, records: Mapping[str, Applied]) -> None:
        """Record paths found already as desired (a fresh commit, or the one that wrote them)."""
        self._paths.update(records)

    def forget(self, paths: Iterable[str]) -> None:
        """Drop the records of paths that vanished on their own."""
        for path in paths:
            self._paths.pop(path, None)

    def state(self) -> AppliedState:
        """The last-applied state to save at the end of the run."""
        return self._previous.model_copy(update={"paths": dict(self._paths)})
