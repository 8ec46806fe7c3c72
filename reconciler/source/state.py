"""What the source stage remembers between runs, and which commit a run uses because of it.

`source-state.json` holds the last good commit (and when it was applied), the tip
refused last (so it is not retried every run), and an operator's rollback pin.
`decide` turns that memory and the branch tip into the commit to run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.atomicfile import read_own, write_atomic
from reconciler.errors import Failed, Problem
from reconciler.timewords import stamp


class StateFileError(Failed):
    """The source state file cannot be read; fix or delete it."""

class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Refusal(_State):
    """A commit that was refused, so it is not retried until a newer tip arrives."""

    commit: str
    reason: str
    at: datetime
    settings: str | None = None  # the node settings that judged it (`choice.judged_by`)


class Pin(_State):
    """An operator's rollback: use this commit until unpinned."""

    commit: str
    since: datetime
    reason: str = ""


class SourceState(_State):
    """What the source stage remembers between runs (`StateDir.source_state`)."""

    last_good: str | None = None
    last_good_at: datetime | None = None
    refused: Refusal | None = None
    pinned: Pin | None = None
    # When this node first saw each recent commit: a signature counts if its key was
    # valid then (source/sigtime.py), not at the date the signer wrote in the commit.
    first_seen: dict[str, datetime] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SourceState:
        """The saved state; an empty state when the file does not exist yet."""
        try:
            return cls.model_validate_json(read_own(path))
        except FileNotFoundError:
            return cls()
        except (OSError, ValidationError) as err:
            raise StateFileError(
                [Problem(f"unreadable source state ({err}); delete it to start afresh", str(path))]
            ) from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file, fsync, rename, fsync directory)."""
        write_atomic(path, self.model_dump_json(indent=2).encode() + b"\n")

    def mark_good(self, commit: str, at: datetime | None = None) -> SourceState:
        """A run of `commit` worked: it is the new last good, and any refusal is forgotten."""
        return self.model_copy(
            update={"last_good": commit, "last_good_at": at or _now(), "refused": None}
        )

    def mark_refused(
        self, commit: str, reason: str, at: datetime | None = None, settings: str | None = None
    ) -> SourceState:
        """`commit` was refused by a node with `settings`: with other settings (agent.toml
        fixed) it is judged again."""
        return self.model_copy(update={"refused": Refusal(
            commit=commit, reason=reason, at=at or _now(), settings=settings)})

    def saw(self, commit: str, at: datetime | None = None) -> SourceState:
        """Remember when `commit` was first seen (a commit seen before keeps its time).
        The newest FIRST_SEEN_KEPT are kept, and always those of the commits in use."""
        if commit in self.first_seen:
            return self
        seen = {**self.first_seen, commit: at or _now()}
        keep = {c for c in (self.last_good, self.pinned.commit if self.pinned else None) if c}
        newest = sorted(seen, key=seen.__getitem__, reverse=True)[:FIRST_SEEN_KEPT]
        kept = {c: seen[c] for c in seen if c in keep or c in newest}
        return self.model_copy(update={"first_seen": kept})

    def pin(self, commit: str, reason: str = "", at: datetime | None = None) -> SourceState:
        return self.model_copy(
            update={"pinned": Pin(commit=commit, since=at or _now(), reason=reason)}
        )

    def unpin(self) -> SourceState:
        return self.model_copy(update={"pinned": None})

    @property
    def in_use(self) -> str | None:
        """The commit the node enforces without looking at the tip: the pin, else the last good."""
        return self.pinned.commit if self.pinned is not None else self.last_good

    def staleness(self, now: datetime | None = None) -> timedelta | None:
        """How long ago the last good commit was applied (None: never)."""
        if self.last_good_at is None:
            return None
        return (now or _now()) - self.last_good_at


FIRST_SEEN_KEPT = 256


def _now() -> datetime:
    return datetime.now(UTC)


class Why(StrEnum):
    """Why `decide` chose the commit it chose."""

    PINNED = "pinned"  # an operator's rollback pin wins over the tip
    NEW_TIP = "new-tip"  # the tip is new: try it
    UNCHANGED = "unchanged"  # the tip is the last good commit: run it again
    REFUSED_TIP = "refused-tip"  # the tip was refused before: keep the last good commit
    NOTHING = "nothing"  # the tip was refused and nothing ever worked: apply nothing


@dataclass(frozen=True)
class Decision:
    commit: str | None
    why: Why
    detail: str


RETRY = "push a fix, or `reconciler run --retry-refused` to try it again"


def decide(
    state: SourceState, tip: str, retry_refused: bool = False, settings: str | None = None
) -> Decision:
    """Which commit to run: the pin, else the tip unless it was refused already by a node
    with the same `settings`."""
    if state.pinned is not None:
        return Decision(
            state.pinned.commit,
            Why.PINNED,
            f"pinned to {state.pinned.commit[:12]} since {stamp(state.pinned.since)}",
        )
    refused = state.refused
    if refused is not None and refused.commit == tip and refused.settings == settings \
            and not retry_refused:
        detail = f"tip {tip} was refused at {stamp(refused.at)}: {refused.reason}"
        if state.last_good is None:
            return Decision(None, Why.NOTHING, f"{detail}; no commit has worked yet")
        return Decision(state.last_good, Why.REFUSED_TIP, f"{detail}; keeping {state.last_good}")
    if tip == state.last_good:
        return Decision(tip, Why.UNCHANGED, f"tip {tip} is the last good commit")
    return Decision(tip, Why.NEW_TIP, f"new tip {tip} (last good {state.last_good or 'none'})")
