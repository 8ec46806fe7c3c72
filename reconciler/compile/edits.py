"""Which node files an action writes besides the paths of file, tree, directory and
symlink actions: where an APT source lives (and the texts it writes there), the file a
line or block edits, /etc/fstab.

Compile uses it to refuse two owners of one file; plan uses it to know what a purged
directory may keep and what is no orphan.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit

from reconciler.compile.nodeconfig import (
    Action,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
    DirectoryAction,
    FileAction,
    LineAction,
    MountAction,
    SymlinkAction,
    TreeAction,
)
from reconciler.errors import Problem

FSTAB = "/etc/fstab"
SOURCES_DIR = "/etc/apt/sources.list.d"
KEYRINGS_DIR = "/etc/apt/keyrings"
PREFERENCES_DIR = "/etc/apt/preferences.d"
PATH_ACTIONS = (FileAction, TreeAction, DirectoryAction, SymlinkAction, MountAction)


def apt_sources_file(action: AptSourceAction) -> str:
    return f"{SOURCES_DIR}/{action.name}.sources"


def apt_keyring_file(action: AptSourceAction) -> str | None:
    """The keyring's node path, named for the source, with the repo file's extension."""
    if action.key is None:
        return None
    return f"{KEYRINGS_DIR}/{action.name}{posixpath.splitext(action.key)[1]}"


def apt_preferences_file(action: AptSourceAction) -> str:
    return f"{PREFERENCES_DIR}/{action.name}.pref"


def sources_text(action: AptSourceAction) -> str:
    """The deb822 stanza of the source."""
    lines = [f"# Managed by reconciler ({action.id}): edits here are overwritten.",
             f"Types: {' '.join(action.types)}", f"URIs: {' '.join(action.uris)}",
             f"Suites: {' '.join(action.suites)}"]
    if action.components:
        lines.append(f"Components: {' '.join(action.components)}")
    if action.architectures:
        lines.append(f"Architectures: {' '.join(action.architectures)}")
    keyring = apt_keyring_file(action)
    if keyring is not None:
        lines.append(f"Signed-By: {keyring}")
    return "".join(f"{line}\n" for line in lines)


def preferences_text(action: AptSourceAction) -> str:
    """apt_preferences stanzas: each pin by version, or by the source's origin (its first
    URI's host; "" for a file: URI)."""
    origin = (urlsplit(action.uris[0]).hostname or "") if action.uris else ""
    stanzas = []
    for pin in action.pins:
        what = f"version {pin.version}" if pin.version else f'origin "{origin}"'
        stanzas.append(f"Explanation: {action.id}\nPackage: {pin.packages}\nPin: {what}\n"
                       f"Pin-Priority: {pin.priority}\n")
    return "\n".join(stanzas)


def edited_paths(action: Action) -> tuple[str, ...]:
    """Node files the action writes that no file action may also own."""
    match action:
        case LineAction() | BlockAction():
            return (action.path,)
        case MountAction():
            return (FSTAB,)
        case AptSourceAction():
            keyring = apt_keyring_file(action)
            return (apt_sources_file(action), apt_preferences_file(action),
                    *((keyring,) if keyring else ()))
        case AuthorizedKeysAction() if action.path is not None:
            return (action.path,)
    return ()


def whole_file_conflicts(actions: tuple[Action, ...]) -> list[Problem]:
    """An edit of a file a file action also writes whole: the two would undo each other at
    every run, so the class is refused."""
    owners = {a.path: a for a in actions if isinstance(a, FileAction)}
    problems = []
    for action in actions:
        for path in edited_paths(action):
            owner = owners.get(path)
            if owner is not None:
                problems.append(Problem(
                    f"{action.id} edits {path}, which {owner.id} (line {owner.origin.line} of "
                    f"{owner.origin.path}) writes whole: keep one of them",
                    action.origin.path, action.origin.line, action=action.id))
    return problems


def nested_path_conflicts(actions: tuple[Action, ...]) -> list[Problem]:
    """A path one action keeps as a file (a file, a symlink, a file it edits) with another
    action's path below it (`/etc/x` and `/etc/x/y`): one of the two could only fail
    half-way through an apply, so the class is refused, at the action below."""
    files: dict[str, Action] = {}
    for action in actions:
        if isinstance(action, FileAction | SymlinkAction):
            files.setdefault(action.path, action)
        for path in edited_paths(action):
            files.setdefault(path, action)
    problems = []
    for action in actions:
        own = (action.path,) if isinstance(action, PATH_ACTIONS) else ()
        for path in (*own, *edited_paths(action)):
            parent = posixpath.dirname(path)
            while parent != "/" and parent not in files:
                parent = posixpath.dirname(parent)
            owner = files.get(parent)
            if owner is not None:
                problems.append(Problem(
                    f"manages {path}, below {parent}, which {owner.id} (line "
                    f"{owner.origin.line} of {owner.origin.path}) keeps as a file: a path "
                    f"cannot be a file and a directory at once", action.origin.path,
                    action.origin.line, action=action.id))
                break
    return problems
