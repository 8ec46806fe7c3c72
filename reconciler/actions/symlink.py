"""Symlink actions: a link with the given target (replaced atomically), or no link."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.common import missing_parents, owner_ids
from reconciler.compile.nodeconfig import SymlinkAction
from reconciler.plan.change import ApplyContext, Change, Drift, Effect, Removed, Wrote
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied

PARENT_MODE = 0o755


@dataclass(frozen=True, kw_only=True)
class Link(Change):
    """Point the path at the action's target, replacing whatever non-directory is there
    (a file this node wrote as a secret is not backed up)."""

    op = "link"
    action: SymlinkAction
    path: str
    uid: int | None
    gid: int | None

    def apply(self, ctx: ApplyContext) -> Effect:
        for parent in missing_parents(ctx.system, self.path):
            ctx.system.mkdir(parent, PARENT_MODE, None, None)
        ctx.system.symlink(self.path, self.action.target, uid=self.uid, gid=self.gid,
                           secret=self.secret)
        return Wrote(self.path, Applied(type="symlink", action=self.action.id,
                                        target=self.action.target, commit=ctx.commit))


@dataclass(frozen=True, kw_only=True)
class Unlink(Change):
    """Remove a symlink the config declares absent (never its target)."""

    op = "unlink"
    path: str

    def apply(self, ctx: ApplyContext) -> Effect:
        ctx.system.remove(self.path)
        return Removed(self.path)


def probe(ctx: Context, action: SymlinkAction) -> ActionPlan:
    """The link against the live node: missing, pointing elsewhere, or something else there."""
    plan = ActionPlan(action)
    path = action.path
    live = ctx.system.lstat(path)
    record = ctx.applied.get(path)
    last = record.commit if record else None
    if action.ensure == "absent":
        if live is not None:
            if live.kind != "symlink":
                raise ValueError(f"{path} is a {live.kind}, not a symlink; refusing to remove it")
            plan.changes.append(Unlink(action=action,
                                       summary=f"remove symlink → {live.link_target}",
                                       path=path, last_commit=last))
        return plan
    uid, gid = owner_ids(ctx, action.owner, action.group)
    edited = record is not None and (live is None or live.link_target != record.target)
    moved = record is not None and record.target != action.target
    state = (Drift.BOTH if moved else Drift.EDITED) if edited else Drift.PENDING
    if live is None:
        parents = missing_parents(ctx.system, path)
        summary = f"create → {action.target}" + (
            f" (and directories {', '.join(parents)})" if parents else "")
    elif live.kind == "directory":
        raise ValueError(f"{path} is a directory; refusing to replace it with a symlink")
    elif foreign := live.foreign_link(uid):
        raise ValueError(f"{path} {foreign}")
    elif live.kind != "symlink":
        summary = f"replace {live.kind} with symlink → {action.target}"
    elif live.link_target != action.target:
        summary = f"target {live.link_target} → {action.target}"
    else:
        plan.in_sync[path] = Applied(type="symlink", action=action.id, target=action.target,
                                     commit=record.commit if record else ctx.commit)
        return plan
    plan.changes.append(Link(action=action, summary=summary, path=path, drift=state,
                             last_commit=last, uid=uid, gid=gid,
                             was_secret=bool(record is not None and record.secret)))
    return plan
