"""Progress for people: a transient bar on stderr when it is a terminal, and nothing at
all in a pipe, a file or a log, so scripts and collectors read exactly the output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reconciler.terminal import could_be_terminal

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class TerminalProgress:
    """A run's stages (rendering, checking, applying…) as one bar; see plan/probe.Progress."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self._bar = bar
        self._task = task

    def start(self, stage: str, total: int) -> None:
        """A new stage, drawn at once: a short one is still seen (the bar redraws itself
        only ten times a second)."""
        self._bar.update(self._task, description=stage, completed=0, total=total or None)
        self._bar.refresh()

    def advance(self, steps: int = 1) -> None:
        self._bar.advance(self._task, steps)

    def done(self, completed: int, total: int) -> None:
        """For work that counts for itself (validate's nodes): `completed` of `total`."""
        self._bar.update(self._task, completed=completed, total=total)


@contextmanager
def on_terminal(description: str) -> Iterator[TerminalProgress | None]:
    """A progress bar while the block runs if stderr is a terminal, else None. Rich (40 ms
    to import) is loaded only when it could say yes: stderr is a terminal or the
    environment tells it to treat it as one."""
    if not could_be_terminal(sys.stderr):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        yield TerminalProgress(bar, bar.add_task(description, total=None))


def counter(progress: TerminalProgress | None) -> Callable[[int, int], None] | None:
    """`progress` as a `(done, total)` callback, or None without a terminal."""
    return progress.done if progress is not None else None
