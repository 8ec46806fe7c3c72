"""What a plan is made of: typed changes, why a path drifted, and what applying did.

A leaf of the engine: each action kind subclasses `Change` (actions/), the plan lists
the changes (plan/build.py), and apply calls `Change.apply` and folds the `Effect` it
returns into the run's record (apply/). Nothing here imports those stages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from reconciler.compile.nodeconfig import Action, FileAction, Severity, TreeAction
from reconciler.record.applied import Applied
from reconciler.system.interface import System


class Drift(StrEnum):
    """Why a path differs: the config moved, a person edited it, or both."""

    PENDING = "pending"
    EDITED = "edited-by-hand"
    BOTH = "both"


@dataclass(frozen=True)
class Wrote:
    """A path now is what the config wants; `record` is what to remember of it."""

    path: str
    record: Applied
    note: str | None = None  # what the report should say of the write ("not validated: …")


@dataclass(frozen=True)
class Removed:
    """A path this node managed is gone; its record goes with it."""

    path: str


@dataclass(frozen=True)
class Started:
    """A service was started by this run, so a notification need not reload it."""

    action: str


class Held(str):
    """Why a change is held, as the text reports show; its subclass says which kind of
    reason it is, so counts and headlines can tell a ceiling from a demo root."""

    kind: ClassVar[str] = "other"


class AboveCeiling(Held):
    """The change's severity is above the node's ceiling."""

    kind = "ceiling"


class KeptEdit(Held):
    """A hand edit kept by policy `local-edits=hold`."""

    kind = "local-edits"


class HostOnly(Held):
    """The change touches the running host, which a --root other than / never does."""

    kind = "root"


def host_only(reason: str | None) -> HostOnly | None:
    """`reason` (why something cannot be done under this --root) as a HostOnly hold."""
    return None if reason is None else HostOnly(reason)


def held_kind(reason: str | None) -> str | None:
    """The kind of a hold reason (`ceiling`, `local-edits`, `root`, `other`), None if not held."""
    if reason is None:
        return None
    return reason.kind if isinstance(reason, Held) else Held.kind


# What one applied change did; None when there is nothing the run must remember.
Effect = Wrote | Removed | Started | None


@dataclass(frozen=True)
class ApplyContext:
    """What a change may use while applying itself."""

    system: System
    commit: str | None  # the config commit being applied: every written record names it
    read_repo: Callable[[str], bytes]  # a file of the config repo, for .deb packages
    started: Set[str]  # ids of services started earlier in this run
    digest: Callable[[bytes, bool], str]  # names contents in records: keyed for secret files


@dataclass(frozen=True, kw_only=True)
class Change(ABC):
    """One difference and how to remove it; `op` names the operation in reports.

    Subclasses carry what their operation needs (desired bytes, mode, verb...); those
    fields never reach a report, which shows only the fields below.
    """

    op: ClassVar[str]
    # False for a change that interrupts nothing whatever its action's severity (the fstab
    # entry of a mount): it carries only the severity of what it notifies.
    interrupts: ClassVar[bool] = True

    action: Action
    summary: str
    path: str | None = None
    diff: str | None = None
    drift: Drift = Drift.PENDING
    last_commit: str | None = None
    severity: Severity = Severity.NONE
    held: str | None = None  # why it is held, or None when it may be applied
    notified_by: tuple[str, ...] = ()
    was_secret: bool = False  # the live content was written as a secret file

    @property
    def secret(self) -> bool:
        """Whether live or desired content is secret: no diff, no backup, no output."""
        return self.was_secret or (
            isinstance(self.action, FileAction | TreeAction) and self.action.secret
        )

    def needless(self, ctx: ApplyContext) -> str | None:
        """Why this change need not run after all (the executor skips it), or None: a
        reload or restart of a service this run started, say."""
        return None

    @abstractmethod
    def apply(self, ctx: ApplyContext) -> Effect:
        """Make the node so through `ctx.system` and say what was done (raises on failure)."""
