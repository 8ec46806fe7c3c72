"""Errors as values: every problem carries where it happened, and its class says how to react.

The three reactions of DESIGN.md are the exception classes themselves, so callers
dispatch with `except RetryLater:` and a new error picks its reaction by picking its
base class:

- `Refused`: bad or unverified input (XML, a template, a signature, a rewind); nothing
  is changed, the node keeps its last good commit and waits for a new one.
- `RetryLater`: something outside is not there right now (the remote, the node lock);
  nothing is changed, try again after a while.
- `Failed`: an operation failed part-way (a state file, the history repository); say
  so, and go on with what does not depend on it.

`UsageError` is the operator asking for something that cannot be done. User mistakes
become one clear `path:line: message` at the CLI edge, never a traceback; the CLI maps
each class to an exit code in one place (`reconciler.cli.exitcodes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True)
class Problem:
    """One located problem: `path:line: message`, optionally tied to a node or action."""

    message: str
    path: str = ""
    line: int | None = None
    node: str | None = None
    action: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.path and self.line else self.path
        context = []
        if self.node:
            context.append(f"node {self.node}")
        if self.action:
            context.append(self.action)
        suffix = f" ({', '.join(context)})" if context else ""
        return f"{where}: {self.message}{suffix}" if where else f"{self.message}{suffix}"

    def brief(self) -> str:
        """`path:line: message` when the problem has a place, else just the message."""
        return str(self) if self.path else self.message


@dataclass
class ReconcilerError(Exception):
    """Base of every reconciler error: one or more problems. Raise a subclass: its
    class is the reaction."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.summary())

    @classmethod
    def because(cls, message: str, path: str = "") -> Self:
        """The error of one problem."""
        return cls([Problem(message, path)])

    def summary(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __str__(self) -> str:
        return self.summary()


class Refused(ReconcilerError):
    """Bad or unverified input: change nothing, keep the last good commit, wait for a new one."""


class RetryLater(ReconcilerError):
    """Something outside is unavailable (a remote, the node lock): nothing changed; retry."""


class Failed(ReconcilerError):
    """An operation failed part-way: report it and go on with what does not depend on it."""


class UsageError(ReconcilerError):
    """The operator asked for something that cannot be done (unknown node, bad flag value)."""


class SettingsError(UsageError):
    """The node's own settings (agent.toml, a flag) are wrong: no commit is to blame, so
    none is remembered as refused, and fixing them retries at once."""


class ConfigError(Refused):
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
