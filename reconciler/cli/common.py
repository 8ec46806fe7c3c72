"""Shared CLI plumbing: the one place where error values become messages and exit codes."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from reconciler.errors import ReconcilerError
from reconciler.record.report import EXIT_REFUSED, RunReport

F = TypeVar("F", bound=Callable[..., Any])

MAX_SHOWN = 200


def fail(error: ReconcilerError) -> None:
    """Print the problems (bounded) as `path:line: message` on stderr and exit 1; a
    problem that belongs to no file (unknown node, bad flag) reads `error: message`."""
    for problem in error.problems[:MAX_SHOWN]:
        click.echo(str(problem) if problem.path else f"error: {problem.message}", err=True)
    if len(error.problems) > MAX_SHOWN:
        click.echo(f"... and {len(error.problems) - MAX_SHOWN} more problem(s)", err=True)
    sys.exit(EXIT_REFUSED)


def handles_errors(func: F) -> F:
    """Turn user mistakes (error values) into clean messages, never tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReconcilerError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def repo_options(func: F) -> F:
    """--repo and --rev, shared by every command that reads the config repo."""
    func = click.option("--rev", default=None, metavar="REV",
                        help="Read this commit's tree (not the working tree).")(func)
    func = click.option("--repo", default=".", show_default=True,
                        type=click.Path(file_okay=False), help="The config repo.")(func)
    return func


class StopFlag:
    """Set by SIGTERM/SIGINT: the run finishes its current atomic step, records, and stops."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def stopping(self) -> bool:
        return self.signal is not None

    def __call__(self) -> bool:
        return self.stopping

    def install(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            self.signal = signum

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def exit_code(self, report: RunReport) -> int:
        """128 + the signal for a run it interrupted (as a shell reports it), else the
        report's own exit code."""
        if report.result == "interrupted" and self.signal is not None:
            return 128 + self.signal
        return report.exit_code
