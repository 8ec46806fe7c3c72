"""Purged directories: entries that no action declares are reported (audit) and removed
(change, regular files backed up first), so sites-enabled/, sudoers.d/ or cron.d/ hold
only what the repo says.

Files, symlinks and empty directories are removed; a directory that still holds
entries, or a FIFO or device, is reported and left in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.declared import declared_paths, with_ancestors
from reconciler.compile.nodeconfig import DirectoryAction
from reconciler.plan.change import ApplyContext, Change, Effect, Removed
from reconciler.plan.probe import Context


@dataclass(frozen=True, kw_only=True)
class PurgeEntry(Change):
    """Remove one undeclared entry of a purged directory (a regular file is backed up,
    unless it was written as a secret)."""

    op = "purge"
    path: str

    def apply(self, ctx: ApplyContext) -> Effect:
        if ctx.system.lstat(self.path) is not None:
            ctx.system.remove(self.path, secret=self.secret)
        return Removed(self.path)


def purged_directories(ctx: Context) -> set[str]:
    return {a.path for a in ctx.node.actions
            if isinstance(a, DirectoryAction) and a.purge and a.ensure == "present"}


def purge(ctx: Context, action: DirectoryAction) -> list[Change]:
    """A change for each entry of the directory that no action declares."""
    live = ctx.system.lstat(action.path)
    if live is None or live.kind != "directory":
        return []
    keep = with_ancestors(declared_paths(ctx))
    changes: list[Change] = []
    for name in ctx.system.listdir(action.path):
        path = f"{action.path.rstrip('/')}/{name}"
        entry = ctx.system.lstat(path)
        if path in keep or entry is None:
            continue
        held = None
        what = entry.kind
        if entry.kind == "directory":
            inside = len(ctx.system.listdir(path))
            if inside:
                held = f"a directory holding {inside} {'entry' if inside == 1 else 'entries'}; " \
                       "purge removes only files, links and empty directories"
        elif entry.kind == "symlink":
            what = f"symlink → {entry.link_target}"
        elif entry.kind != "file":
            held = f"a {entry.kind}; left in place"
        record = ctx.applied.get(path)
        changes.append(PurgeEntry(
            action=action, summary=f"purge {what}: no action declares it", path=path,
            held=held, last_commit=record.commit if record else None,
            was_secret=bool(record is not None and record.secret)))
    return changes
