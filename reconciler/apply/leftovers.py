"""Temp files a killed run left next to managed paths (`.NAME.reconciler-XXXXXXXX`, the
only names reconciler writes through before a rename, and `.reconciler-check-XXXXXXXX/`
where a validate command reads the candidate under its real name): the next change run
removes them, and nothing else, and says so."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from reconciler.system.interface import System, UnsafePath
from reconciler.system.validation import CHECK_DIR
from reconciler.system.walk import is_temp_of


def clear_leftovers(system: System, paths: Iterable[str]) -> list[str]:
    """Remove the temp files of `paths` (managed node paths) a killed run left behind;
    the node paths removed. A directory that cannot be listed is left to its actions."""
    names: dict[str, set[str]] = {}
    for path in paths:
        names.setdefault(posixpath.dirname(path), set()).add(posixpath.basename(path))
    removed = []
    for directory, managed in sorted(names.items()):
        try:
            entries = system.listdir(directory)
        except (OSError, UnsafePath):
            continue
        for entry in entries:
            path = posixpath.join(directory, entry)
            try:
                # Most entries are no temp name at all: not compared with every managed name.
                if ".reconciler-" in entry and any(is_temp_of(entry, name) for name in managed):
                    removed += _remove_file(system, path)
                elif CHECK_DIR.fullmatch(entry):
                    removed += _remove_check_dir(system, path)
            except (OSError, UnsafePath):
                continue
    return removed


def _remove_file(system: System, path: str) -> list[str]:
    found = system.lstat(path)
    if found is None or found.kind not in ("file", "symlink"):
        return []
    system.remove(path, secret=True)  # a torn copy: nothing to back up
    return [path]


def _remove_check_dir(system: System, path: str) -> list[str]:
    """A validate command's private directory: the candidate's second name, then itself."""
    found = system.lstat(path)
    if found is None or found.kind != "directory":
        return []
    for entry in system.listdir(path):
        _remove_file(system, posixpath.join(path, entry))
    system.remove(path)
    return [path]
