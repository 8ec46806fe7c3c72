"""File and tree actions: rendered or copied content, mode and owner, and orphans.

Reads never follow a symlink (the System refuses), so a diff can't leak a file the
config does not own; a symlink found where a file belongs is replaced, not followed.
"""

from __future__ import annotations

from reconciler.actions.common import (
    attr_differences,
    drift,
    missing_parents,
    owner_ids,
    sha256,
    unified_diff,
)
from reconciler.config import FileAction, TreeAction
from reconciler.plan import ActionPlan, Change, Context, Drift
from reconciler.render import RenderedFile
from reconciler.state import Applied

DEFAULT_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


def check_file(ctx: Context, action: FileAction) -> ActionPlan:
    plan = ActionPlan(action)
    for item in ctx.rendered.get(action.id, []):
        _check_path(ctx, plan, item, action.mode)
    return plan


def check_tree(ctx: Context, action: TreeAction) -> ActionPlan:
    plan = ActionPlan(action)
    for item in ctx.rendered.get(action.id, []):
        _check_path(ctx, plan, item, action.mode)
    return plan


def _check_path(ctx: Context, plan: ActionPlan, item: RenderedFile, mode: int | None) -> None:
    action = item.action
    path = item.path
    record = ctx.applied.paths.get(path)
    live = ctx.system.lstat(path)
    if item.content is None:
        if live is None:
            return
        if live.kind not in ("file", "symlink"):
            raise ValueError(f"{path} is a {live.kind}; refusing to remove it as a file")
        plan.changes.append(Change(action, "remove", "remove file", path=path,
                                   last_commit=record.commit if record else None))
        return
    uid, gid = owner_ids(ctx, action.owner, action.group)
    desired_sha = sha256(item.content)
    if live is None:
        parents = missing_parents(ctx, path)
        summary = "create" + (f" (and directories {', '.join(parents)})" if parents else "")
        diff = None if action.secret else unified_diff(path, b"", item.content)
        plan.changes.append(Change(
            action, "create", summary, path=path, diff=diff,
            drift=Drift.EDITED if record is not None else Drift.PENDING,
            last_commit=record.commit if record else None,
            args={"content": item.content, "mode": mode if mode is not None else DEFAULT_MODE,
                  "uid": uid, "gid": gid}))
        return
    if live.kind == "symlink":
        plan.changes.append(Change(
            action, "create", f"replace symlink (→ {live.link_target}) with a file", path=path,
            drift=Drift.EDITED if record is not None else Drift.PENDING,
            last_commit=record.commit if record else None,
            args={"content": item.content, "mode": mode if mode is not None else DEFAULT_MODE,
                  "uid": uid, "gid": gid}))
        return
    if live.kind != "file":
        raise ValueError(f"{path} is a {live.kind}, not a regular file; refusing to touch it")
    current = ctx.system.read(path)
    live_sha = sha256(current)
    final_mode = mode if mode is not None else live.mode
    final_uid = uid if uid is not None else live.uid
    final_gid = gid if gid is not None else live.gid
    wanted = Applied(type="file", action=action.id, mode=final_mode, uid=final_uid,
                     gid=final_gid, sha256=desired_sha, commit=ctx.commit)
    live_matches = record is not None and record.sha256 == live_sha and \
        record.mode in (None, live.mode)
    desired_matches = record is not None and record.sha256 == desired_sha and \
        record.mode in (None, final_mode)
    state = drift(record, live_matches, desired_matches)
    last = record.commit if record else None
    if live_sha != desired_sha:
        if action.secret:
            summary, diff = "content changed (secret)", None
        else:
            summary, diff = "content changed", unified_diff(path, current, item.content)
        extra = attr_differences(live, mode, uid, gid)
        if extra:
            summary += "; " + ", ".join(extra)
        plan.changes.append(Change(
            action, "update", summary, path=path, diff=diff, drift=state, last_commit=last,
            args={"content": item.content, "mode": final_mode, "uid": final_uid,
                  "gid": final_gid}))
        return
    differences = attr_differences(live, mode, uid, gid)
    if differences:
        plan.changes.append(Change(
            action, "attrs", ", ".join(differences), path=path, drift=state, last_commit=last,
            args={"mode": mode, "uid": uid, "gid": gid}))
        return
    keep_commit = record.commit if record is not None and record.sha256 == live_sha else None
    plan.in_sync[path] = wanted.model_copy(update={"commit": keep_commit or ctx.commit})


def apply(ctx: Context, change: Change) -> None:
    """Carry out a file change and record what was written (hash, never contents)."""
    path = change.path
    assert path is not None
    action = change.action
    secret = change.secret
    if change.op in ("remove", "orphan-remove"):
        if ctx.system.lstat(path) is not None:
            ctx.system.remove(path, secret=secret)
        ctx.applied.paths.pop(path, None)
        return
    args = change.args
    if change.op == "attrs":
        if args["mode"] is not None:
            ctx.system.chmod(path, args["mode"])
        if args["uid"] is not None or args["gid"] is not None:
            ctx.system.chown(path, args["uid"], args["gid"])
    else:
        dir_mode = getattr(action, "dir_mode", None) or DEFAULT_DIR_MODE
        for parent in missing_parents(ctx, path):
            ctx.system.mkdir(parent, dir_mode, None, None)
        validate = action.validate_cmd if isinstance(action, FileAction) else None
        ctx.system.write_atomic(path, args["content"], args["mode"], args["uid"], args["gid"],
                                validate, secret=secret)
    live = ctx.system.lstat(path)
    if live is None:
        raise OSError(f"{path} vanished right after it was written")
    content_sha = sha256(args["content"]) if "content" in args else \
        ctx.applied.paths[path].sha256 if path in ctx.applied.paths else sha256(ctx.system.read(path))
    ctx.applied.paths[path] = Applied(type="file", action=action.id, mode=live.mode,
                                      uid=live.uid, gid=live.gid, sha256=content_sha,
                                      commit=ctx.commit)


def declared_paths(ctx: Context) -> set[str]:
    """Every node path the config declares now (files, tree entries, directories, links)."""
    paths = {item.path for items in ctx.rendered.values() for item in items}
    for action in ctx.node.actions:
        if action.kind in ("directory", "symlink"):
            paths.add(action.path)  # type: ignore[union-attr]
    return paths


def forgotten(ctx: Context) -> list[str]:
    """Records of undeclared paths that no longer exist: nothing to do but forget them."""
    declared = declared_paths(ctx)
    return [p for p in ctx.applied.paths if p not in declared and ctx.system.lstat(p) is None]


def orphans(ctx: Context) -> list[Change]:
    """Paths applied before but no longer declared: removed only under `prune=true`."""
    declared = declared_paths(ctx)
    changes: list[Change] = []
    prune = ctx.node.policy.prune
    for path, record in sorted(ctx.applied.paths.items()):
        if path in declared:
            continue
        live = ctx.system.lstat(path)
        if live is None:
            continue  # already gone: the record is dropped at the next apply
        summary = f"orphan {record.type}: no longer declared (written at " \
                  f"{(record.commit or '?')[:12]})"
        held = None if prune else "orphan; removed only with policy prune=true"
        changes.append(Change(_orphan_action(ctx, record), "orphan-remove", summary, path=path,
                              held=held, last_commit=record.commit))
    return changes


def _orphan_action(ctx: Context, record: Applied) -> FileAction:
    """A stand-in action naming the orphan's former owner, for reports and apply."""
    from reconciler.config import Origin, Severity

    return FileAction(id=record.action, path="/", ensure="absent", severity=Severity.NONE,
                      origin=Origin(path="(last-applied state)", line=0),
                      declared_in="(no longer declared)")
