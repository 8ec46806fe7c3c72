"""Orphans: paths this node applied before that the config no longer declares.

They are reported, and removed only under the policy `prune=true`; records of orphans
that vanished on their own are simply forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.compile.nodeconfig import (
    DirectoryAction,
    FileAction,
    Origin,
    Severity,
    SymlinkAction,
)
from reconciler.plan.change import ApplyContext, Change, Effect, Removed
from reconciler.plan.probe import Context
from reconciler.record.applied import Applied
from reconciler.system.interface import Stat, UnsafePath


@dataclass(frozen=True, kw_only=True)
class RemoveOrphan(Change):
    """Remove a path that is no longer declared (a secret file is not backed up)."""

    op = "orphan-remove"
    path: str

    def apply(self, ctx: ApplyContext) -> Effect:
        if ctx.system.lstat(self.path) is not None:
            ctx.system.remove(self.path, secret=self.secret)
        return Removed(self.path)


def declared_paths(ctx: Context) -> set[str]:
    """Every node path the config declares now (files, tree entries, directories, links)."""
    paths = {item.path for items in ctx.rendered.values() for item in items}
    for action in ctx.node.actions:
        if isinstance(action, DirectoryAction | SymlinkAction):
            paths.add(action.path)
    return paths


def _inspect(ctx: Context, path: str) -> Stat | str | None:
    """The live state of an orphan, or why it cannot be looked at safely."""
    try:
        return ctx.system.lstat(path)
    except (OSError, UnsafePath) as exc:
        return str(exc) or exc.__class__.__name__


def forgotten(ctx: Context) -> list[str]:
    """Records of undeclared paths that no longer exist: nothing to do but forget them."""
    declared = declared_paths(ctx)
    return [p for p in ctx.applied if p not in declared and _inspect(ctx, p) is None]


def orphans(ctx: Context) -> list[Change]:
    """Paths applied before but no longer declared: removed only under `prune=true`.

    Deepest paths come first, so a pruned directory is emptied of its orphans before
    its own turn; a directory that still holds other things is kept and reported.
    """
    declared = declared_paths(ctx)
    changes: list[Change] = []
    prune = ctx.node.policy.prune
    for path, record in sorted(ctx.applied.items(), reverse=True):
        if path in declared:
            continue
        live = _inspect(ctx, path)
        if live is None:
            continue  # already gone: the record is dropped at the next apply
        summary = f"orphan {record.type}: no longer declared (written at " \
                  f"{(record.commit or '?')[:12]})"
        held = None if prune else "orphan; removed only with policy prune=true"
        if isinstance(live, str):
            held = f"cannot inspect it: {live}"
        elif live.kind == "directory":
            held = held or _not_empty(ctx, path, declared)
        elif live.kind not in ("file", "symlink"):
            held = f"it is now a {live.kind}; left in place"
        changes.append(RemoveOrphan(action=_orphan_action(record), summary=summary, path=path,
                                    held=held, last_commit=record.commit))
    return changes


def _not_empty(ctx: Context, path: str, declared: set[str]) -> str | None:
    """Why an orphan directory must stay: entries other than orphans pruned before it."""
    inside = [f"{path.rstrip('/')}/{name}" for name in ctx.system.listdir(path)]
    kept = [p for p in inside if p not in ctx.applied or p in declared]
    if not kept:
        return None
    entries = "1 entry" if len(kept) == 1 else f"{len(kept)} entries"
    return f"directory still holds {entries} reconciler did not write; left in place"


def _orphan_action(record: Applied) -> FileAction:
    """A stand-in action naming the orphan's former owner, for reports and apply."""
    return FileAction(id=record.action, path="/", ensure="absent", severity=Severity.NONE,
                      origin=Origin(path="(last-applied state)", line=0),
                      declared_in="(no longer declared)", secret=bool(record.secret))
