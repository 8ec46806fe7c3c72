"""What probing one action looks at (`Context`) and what it answers (`ActionPlan`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.compile.nodeconfig import Action, NodeConfig, Severity
from reconciler.plan.change import Change
from reconciler.record.applied import Applied
from reconciler.render.rendered import RenderedFile
from reconciler.system.interface import System


class Progress(Protocol):
    """Where a run says how far along it is (a bar on a terminal, nothing elsewhere)."""

    def start(self, stage: str, total: int) -> None:
        """A new stage of `total` steps (0: unknown)."""

    def advance(self, steps: int = 1) -> None:
        """`steps` more of the stage are done."""


class Quiet:
    """Progress nobody watches: a pipe, a test, the agent."""

    def start(self, stage: str, total: int) -> None:
        return None

    def advance(self, steps: int = 1) -> None:
        return None


@dataclass(frozen=True)
class Context:
    """One node's run as the engine sees it: desired state, live system, last-applied
    records. Probing only reads it; apply borrows its system, commit and repo."""

    system: System
    node: NodeConfig
    rendered: Mapping[str, list[RenderedFile]]  # by action id
    applied: Mapping[str, Applied]  # last-applied records by node path
    commit: str | None
    read_repo: Callable[[str], bytes]  # a file of the config repo, for .deb packages
    ceiling: Severity
    digest: Callable[[bytes, bool], str]  # names contents in records: keyed for secret files
    # Outside a change window: changes up to this severity wait for its opening (text).
    window: tuple[Severity, str] | None = None
    should_stop: Callable[[], bool] = lambda: False  # a stop request, checked between files
    progress: Progress = field(default_factory=Quiet)  # one step per file, per other action


@dataclass
class ActionPlan:
    """What one action will do: its changes (empty when in sync) or why it cannot tell."""

    action: Action
    changes: list[Change] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    in_sync: dict[str, Applied] = field(default_factory=dict)  # records of matching paths
