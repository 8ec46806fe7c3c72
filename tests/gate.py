"""A gate a command of the config repo waits at until the test opens it.

A step that must still be running when the test acts (a signal mid-run, a kill) is a
command that reads a named pipe: `gated_command` blocks in the read until `Gate.open`
ends its input, so the test decides when the step ends, whatever the machine's load.
"""

from __future__ import annotations

import os
from pathlib import Path


class Gate:
    """A named pipe whose only writer is the test: readers block until `open`."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        # Read-write never blocks on Linux; holding a writer keeps a reader waiting in read().
        self._fd: int | None = os.open(path, os.O_RDWR)

    def open(self) -> None:
        """End of input for every reader: the gated command goes on (again is a no-op)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def gated_command(marker: str | Path, gate: Gate) -> str:
    """Shell that opens the gate, then touches `marker`, then waits until the gate opens
    (escaped for an XML attribute): once `marker` exists, the command is waiting."""
    return f"{{ touch {marker}; cat &gt;/dev/null; }} &lt; {gate.path}"
