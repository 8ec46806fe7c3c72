"""Whether output may go to a terminal, answered without importing rich: where it surely
does not, a command prints plain lines and spares rich's imports."""

from __future__ import annotations

import os
from typing import TextIO


def could_be_terminal(stream: TextIO) -> bool:
    """False when rich's `Console.is_terminal` is sure to be for `stream`: it is no
    terminal and neither of the variables that override that (TTY_COMPATIBLE,
    FORCE_COLOR) is set."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False
