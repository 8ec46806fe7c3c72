"""Errors as values: every problem carries where it happened and how to react.

User mistakes (bad XML, unknown class, template error...) become one clear
`path:line: message` at the CLI edge, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Reaction(StrEnum):
    """What the caller should do about an error (see DESIGN.md)."""

    REFUSED = "refused"  # bad or unverified config: keep last good, wait for a new commit
    RETRY = "retry"  # remote down: back off and try again
    FAILED = "failed"  # one action failed: skip its dependents, go on


@dataclass(frozen=True)
class Problem:
    """One located problem: `path:line: message`, optionally tied to a node or action."""

    message: str
    path: str = ""
    line: int | None = None
    node: str | None = None
    action: str | None = None

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line:
            where = f"{where}:{self.line}"
        context = []
        if self.node:
            context.append(f"node {self.node}")
        if self.action:
            context.append(self.action)
        suffix = f" ({', '.join(context)})" if context else ""
        return f"{where}: {self.message}{suffix}"


@dataclass
class ReconcilerError(Exception):
    """Base error: one or more problems and the reaction they call for."""

    problems: list[Problem] = field(default_factory=list)
    reaction: Reaction = Reaction.REFUSED

    def __post_init__(self) -> None:
        super().__init__(self.summary())

    def summary(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __str__(self) -> str:
        return self.summary()


class ConfigError(ReconcilerError):
    """The config repo is invalid at this revision (refused whole)."""

    @classmethod
    def at(
        cls,
        message: str,
        path: str = "",
        line: int | None = None,
        node: str | None = None,
        action: str | None = None,
    ) -> ConfigError:
        return cls([Problem(message, path, line, node, action)])


class UsageError(ReconcilerError):
    """The operator asked for something that cannot be done (unknown node, bad flag value)."""

    @classmethod
    def because(cls, message: str) -> UsageError:
        return cls([Problem(message)])
