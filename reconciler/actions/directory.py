"""Directory actions: present with mode and owner, or absent (only when empty)."""

from __future__ import annotations

from reconciler.actions.common import attr_differences, missing_parents, owner_ids
from reconciler.compile.nodeconfig import DirectoryAction
from reconciler.plan.build import ActionPlan, Change, Context, Drift
from reconciler.record.applied import Applied

DEFAULT_MODE = 0o755


def check(ctx: Context, action: DirectoryAction) -> ActionPlan:
    plan = ActionPlan(action)
    path = action.path
    live = ctx.system.lstat(path)
    record = ctx.applied.paths.get(path)
    last = record.commit if record else None
    if action.ensure == "absent":
        if live is not None:
            if live.kind != "directory":
                raise ValueError(f"{path} is a {live.kind}, not a directory")
            plan.changes.append(Change(action, "rmdir", "remove directory", path=path,
                                       last_commit=last))
        return plan
    uid, gid = owner_ids(ctx, action.owner, action.group)
    if live is None:
        parents = missing_parents(ctx, path)
        summary = "create" + (f" (and parents {', '.join(parents)})" if parents else "")
        plan.changes.append(Change(
            action, "mkdir", summary, path=path,
            drift=Drift.EDITED if record is not None else Drift.PENDING, last_commit=last,
            args={"mode": action.mode if action.mode is not None else DEFAULT_MODE,
                  "uid": uid, "gid": gid}))
        return plan
    if live.kind != "directory":
        raise ValueError(f"{path} is a {live.kind}, not a directory; refusing to replace it")
    differences = attr_differences(live, action.mode, uid, gid)
    if differences:
        edited = record is not None and record.mode not in (None, live.mode)
        plan.changes.append(Change(
            action, "attrs", ", ".join(differences), path=path,
            drift=Drift.EDITED if edited else Drift.PENDING, last_commit=last,
            args={"mode": action.mode, "uid": uid, "gid": gid}))
        return plan
    plan.in_sync[path] = Applied(type="directory", action=action.id, mode=live.mode,
                                 uid=live.uid, gid=live.gid,
                                 commit=record.commit if record else ctx.commit)
    return plan


def apply(ctx: Context, change: Change) -> None:
    path = change.path
    assert path is not None
    args = change.args
    if change.op == "rmdir":
        ctx.system.remove(path)
        ctx.applied.paths.pop(path, None)
        return
    if change.op == "mkdir":
        for parent in missing_parents(ctx, path):
            if parent != path:
                ctx.system.mkdir(parent, DEFAULT_MODE, None, None)
        ctx.system.mkdir(path, args["mode"], args["uid"], args["gid"])
    else:
        if args["mode"] is not None:
            ctx.system.chmod(path, args["mode"])
        if args["uid"] is not None or args["gid"] is not None:
            ctx.system.chown(path, args["uid"], args["gid"])
    live = ctx.system.lstat(path)
    if live is None or live.kind != "directory":
        raise OSError(f"{path} is not a directory after it was created")
    ctx.applied.paths[path] = Applied(type="directory", action=change.action.id, mode=live.mode,
                                      uid=live.uid, gid=live.gid, commit=ctx.commit)
