"""What the config declares on a node now: the node paths its actions own or edit, and
the ids of its actions (the keys of records that are not paths)."""

from __future__ import annotations

import posixpath

from reconciler.compile.edits import edited_paths
from reconciler.compile.nodeconfig import DirectoryAction, MountAction, SymlinkAction
from reconciler.plan.probe import Context


def declared_paths(ctx: Context) -> set[str]:
    """Every node path an action writes: rendered files and tree entries, directories,
    links, mount points, and the files APT sources, lines and blocks edit."""
    paths = {item.path for items in ctx.rendered.values() for item in items}
    for action in ctx.node.actions:
        if isinstance(action, DirectoryAction | SymlinkAction | MountAction):
            paths.add(action.path)
        paths.update(edited_paths(action))
    return paths


def declared_keys(ctx: Context) -> set[str]:
    """Every key a last-applied record may have and still be declared."""
    return declared_paths(ctx) | {action.id for action in ctx.node.actions}


def with_ancestors(paths: set[str]) -> set[str]:
    """The paths and every directory above them (a purge keeps those too)."""
    found = set(paths)
    for path in paths:
        parent = posixpath.dirname(path)
        while parent not in ("/", "") and parent not in found:
            found.add(parent)
            parent = posixpath.dirname(parent)
    return found
