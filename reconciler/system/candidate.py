"""The `%s` of a file action's `validate=` command, which stands for the candidate file
(`%%` for a percent sign). A module of its own: compiling a class, which refuses a
command without it, loads nothing that runs commands (validation.py)."""

from __future__ import annotations

import re
import shlex

_PLACEHOLDER = re.compile(r"%[%s]")


def has_candidate(command: str) -> bool:
    """Whether the command names the candidate (`%s`, not an escaped `%%s`)."""
    return any(match.group() == "%s" for match in _PLACEHOLDER.finditer(command))


def fill(command: str, path: str) -> str:
    """The command with `%s` replaced by the quoted path and `%%` by `%`."""
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else shlex.quote(path), command)
