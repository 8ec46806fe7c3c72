"""Directory actions: present with mode and owner, or absent (only when empty); a purged
directory also loses the entries no action declares (purge.py)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.common import attr_differences, missing_parents, owner_ids, set_attrs
from reconciler.actions.purge import purge
from reconciler.compile.nodeconfig import DirectoryAction
from reconciler.plan.change import ApplyContext, Change, Drift, Effect, Removed, Wrote
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied

DEFAULT_MODE = 0o755


@dataclass(frozen=True, kw_only=True)
class MakeDirectory(Change):
    """Create a directory (and its missing parents, with the default mode)."""

    op = "mkdir"
    action: DirectoryAction
    path: str
    mode: int
    uid: int | None
    gid: int | None

    def apply(self, ctx: ApplyContext) -> Effect:
        for parent in missing_parents(ctx.system, self.path):
            ctx.system.mkdir(parent, DEFAULT_MODE, None, None)
        ctx.system.mkdir(self.path, self.mode, self.uid, self.gid)
        return _recorded(ctx, self.action, self.path)


@dataclass(frozen=True, kw_only=True)
class DirectoryAttrs(Change):
    """Fix a directory's mode or owner; its entries are left alone."""

    op = "attrs"
    action: DirectoryAction
    path: str
    mode: int | None
    uid: int | None
    gid: int | None

    def apply(self, ctx: ApplyContext) -> Effect:
        set_attrs(ctx.system, self.path, self.mode, self.uid, self.gid)
        return _recorded(ctx, self.action, self.path)


@dataclass(frozen=True, kw_only=True)
class RemoveDirectory(Change):
    """Remove a directory the config declares absent; the System refuses a non-empty one."""

    op = "rmdir"
    path: str

    def apply(self, ctx: ApplyContext) -> Effect:
        ctx.system.remove(self.path)
        return Removed(self.path)


def _recorded(ctx: ApplyContext, action: DirectoryAction, path: str) -> Wrote:
    live = ctx.system.lstat(path)
    if live is None or live.kind != "directory":
        raise OSError(f"{path} is not a directory after it was created")
    return Wrote(path, Applied(type="directory", action=action.id, mode=live.mode,
                               uid=live.uid, gid=live.gid, commit=ctx.commit))


def probe(ctx: Context, action: DirectoryAction) -> ActionPlan:
    """The directory against the live node: missing, absent-but-there, or other attributes;
    with `purge`, then each entry no action declares."""
    plan = _probe_itself(ctx, action)
    if action.purge and action.ensure == "present":
        plan.changes += purge(ctx, action)
    return plan


def _probe_itself(ctx: Context, action: DirectoryAction) -> ActionPlan:
    plan = ActionPlan(action)
    path = action.path
    live = ctx.system.lstat(path)
    record = ctx.applied.get(path)
    last = record.commit if record else None
    if action.ensure == "absent":
        if live is not None:
            if live.kind != "directory":
                raise ValueError(f"{path} is a {live.kind}, not a directory")
            plan.changes.append(RemoveDirectory(action=action, summary="remove directory",
                                                path=path, last_commit=last))
        return plan
    uid, gid = owner_ids(ctx, action.owner, action.group)
    if live is None:
        parents = missing_parents(ctx.system, path)
        summary = "create" + (f" (and parents {', '.join(parents)})" if parents else "")
        plan.changes.append(MakeDirectory(
            action=action, summary=summary, path=path,
            drift=Drift.EDITED if record is not None else Drift.PENDING, last_commit=last,
            mode=action.mode if action.mode is not None else DEFAULT_MODE, uid=uid, gid=gid))
        return plan
    if live.kind != "directory":
        raise ValueError(f"{path} is a {live.kind}, not a directory; refusing to replace it")
    differences = attr_differences(live, action.mode, uid, gid)
    if differences:
        edited = record is not None and record.mode not in (None, live.mode)
        plan.changes.append(DirectoryAttrs(
            action=action, summary=", ".join(differences), path=path,
            drift=Drift.EDITED if edited else Drift.PENDING, last_commit=last,
            mode=action.mode, uid=uid, gid=gid))
        return plan
    plan.in_sync[path] = Applied(type="directory", action=action.id, mode=live.mode,
                                 uid=live.uid, gid=live.gid,
                                 commit=record.commit if record else ctx.commit)
    return plan
