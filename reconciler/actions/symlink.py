"""Symlink actions: a link with the given target (replaced atomically), or no link."""

from __future__ import annotations

from reconciler.actions.common import missing_parents, owner_ids
from reconciler.compile.nodeconfig import SymlinkAction
from reconciler.plan.build import ActionPlan, Change, Context, Drift
from reconciler.record.applied import Applied


def check(ctx: Context, action: SymlinkAction) -> ActionPlan:
    plan = ActionPlan(action)
    path = action.path
    live = ctx.system.lstat(path)
    record = ctx.applied.paths.get(path)
    last = record.commit if record else None
    if action.ensure == "absent":
        if live is not None:
            if live.kind != "symlink":
                raise ValueError(f"{path} is a {live.kind}, not a symlink; refusing to remove it")
            plan.changes.append(Change(action, "unlink", f"remove symlink → {live.link_target}",
                                       path=path, last_commit=last))
        return plan
    uid, gid = owner_ids(ctx, action.owner, action.group)
    edited = record is not None and (live is None or live.link_target != record.target)
    moved = record is not None and record.target != action.target
    state = (Drift.BOTH if moved else Drift.EDITED) if edited else Drift.PENDING
    if live is None:
        parents = missing_parents(ctx, path)
        summary = f"create → {action.target}" + (
            f" (and directories {', '.join(parents)})" if parents else "")
        plan.changes.append(Change(action, "link", summary, path=path, drift=state,
                                   last_commit=last, args={"uid": uid, "gid": gid}))
        return plan
    if live.kind == "directory":
        raise ValueError(f"{path} is a directory; refusing to replace it with a symlink")
    if live.kind != "symlink":
        plan.changes.append(Change(action, "link",
                                   f"replace {live.kind} with symlink → {action.target}",
                                   path=path, drift=state, last_commit=last,
                                   args={"uid": uid, "gid": gid}))
        return plan
    if live.link_target != action.target:
        plan.changes.append(Change(action, "link",
                                   f"target {live.link_target} → {action.target}", path=path,
                                   drift=state, last_commit=last, args={"uid": uid, "gid": gid}))
        return plan
    plan.in_sync[path] = Applied(type="symlink", action=action.id, target=action.target,
                                 commit=record.commit if record else ctx.commit)
    return plan


def apply(ctx: Context, change: Change) -> None:
    path = change.path
    action = change.action
    assert path is not None and isinstance(action, SymlinkAction)
    if change.op == "unlink":
        ctx.system.remove(path)
        ctx.applied.paths.pop(path, None)
        return
    for parent in missing_parents(ctx, path):
        ctx.system.mkdir(parent, 0o755, None, None)
    ctx.system.symlink(path, action.target, uid=change.args["uid"], gid=change.args["gid"])
    ctx.applied.paths[path] = Applied(type="symlink", action=action.id, target=action.target,
                                      commit=ctx.commit)
