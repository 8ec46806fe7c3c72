"""Bad days in the state directory: a state file or the history repository that cannot
be read (a torn write, a disk error, a hand edit) is set aside with a timestamp, the run
says so in its notes, and carries on from a fresh one instead of failing every run until
a person deletes files by hand. What was set aside is kept for that person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from reconciler.atomicfile import set_aside
from reconciler.errors import ReconcilerError
from reconciler.record import applied
from reconciler.source.state import SourceState
from reconciler.statedir import OWN_FILES, StateDir

_MKSTEMP = "[a-z0-9_]{8}"  # what tempfile.mkstemp and mkdtemp put in a name


def set_aside_unreadable(state: StateDir) -> list[str]:
    """Set aside `applied.json` and `source-state.json` when they cannot be parsed; one
    note per file set aside. The caller holds the node lock."""
    checks: list[tuple[Path, str, Callable[[], object]]] = [
        (state.applied, "the last-applied state", lambda: applied.load(state)),
        (state.source_state, "the source state (last good and refused commits, pin)",
         lambda: SourceState.load(state.source_state)),
    ]
    notes = []
    for path, what, load in checks:
        try:
            load()
        except ReconcilerError:
            notes.append(moved_note(path, what, set_aside(path)))
    return notes


def removed_note(path: str) -> str:
    """The report's note for one temp file of a killed run, removed."""
    return f"removed {path}, a temp file a killed run left behind"


def moved_note(path: Path, what: str, moved: Path) -> str:
    """The report's note for one thing set aside."""
    return (f"{what} could not be read: {path} set aside as {moved.name}, carrying on "
            f"from a fresh one")


def clear_state_leftovers(state: StateDir) -> list[str]:
    """Remove the temp files a killed run left in the state directory — only names
    reconciler's own writers make: `.NAME.XXXXXXXX.tmp` of a state file, `.history.XXXXXXXX`
    (a history being built), `backups/.backup-…`, `cache/templates/.templates-…` — and
    return their paths. The caller holds the node lock."""
    own = "|".join(re.escape(name) for name in OWN_FILES)
    places = [
        (state.path, re.compile(rf"\.(?:{own})\.{_MKSTEMP}\.tmp|\.history\.{_MKSTEMP}")),
        (state.backups, re.compile(r"\.backup-[0-9a-f]{16}")),
        (state.template_cache, re.compile(rf"\.templates-{_MKSTEMP}")),
    ]
    removed = []
    for directory, pattern in places:
        try:
            entries = list(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if pattern.fullmatch(entry.name) is None or entry.is_symlink():
                continue
            try:
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError:
                continue
            removed.append(str(entry))
    return removed
