"""File and tree actions: rendered or copied content, mode and owner, and orphans.

Reads never follow a symlink (the System refuses), so a diff can't leak a file the
config does not own; a symlink found where a file belongs is replaced, not followed.
"""

from __future__ import annotations

from reconciler.actions.common import (
    attr_differences,
    drift,
    live_diff,
    missing_parents,
    owner_ids,
    sha256,
)
from reconciler.compile.nodeconfig import (
    DirectoryAction,
    FileAction,
    Origin,
    Severity,
    SymlinkAction,
    TreeAction,
)
from reconciler.plan.build import ActionPlan, Change, Context, Drift
from reconciler.record.applied import Applied
from reconciler.render.renderer import RenderedFile
from reconciler.system.interface import Stat, UnsafePath

DEFAULT_MODE = 0o644
SECRET_MODE = 0o600  # a secret file without a declared mode is readable by its owner only
DEFAULT_DIR_MODE = 0o755


def check(ctx: Context, action: FileAction | TreeAction) -> ActionPlan:
    """Every file the action renders (one, or a whole tree) against the live node."""
    plan = ActionPlan(action)
    mode = SECRET_MODE if action.mode is None and action.secret else action.mode
    for item in ctx.rendered.get(action.id, []):
        _check_path(ctx, plan, item, mode)
    return plan


def _check_path(ctx: Context, plan: ActionPlan, item: RenderedFile, mode: int | None) -> None:
    action = item.action
    path = item.path
    record = ctx.applied.paths.get(path)
    was_secret = bool(record is not None and record.secret)
    live = ctx.system.lstat(path)
    if item.content is None:
        if live is None:
            return
        if live.kind not in ("file", "symlink"):
            raise ValueError(f"{path} is a {live.kind}; refusing to remove it as a file")
        plan.changes.append(Change(action, "remove", "remove file", path=path,
                                   last_commit=record.commit if record else None,
                                   was_secret=was_secret))
        return
    uid, gid = owner_ids(ctx, action.owner, action.group)
    desired_sha = sha256(item.content)
    if live is None:
        parents = missing_parents(ctx, path)
        summary = "create" + (" (secret)" if action.secret else "") + \
            (f" (and directories {', '.join(parents)})" if parents else "")
        diff = None if action.secret else live_diff(path, b"", item.content)
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
                     gid=final_gid, sha256=desired_sha, commit=ctx.commit,
                     secret=action.secret or None)
    live_matches = record is not None and record.matches(
        "file", live.mode, live.uid, live.gid, sha256=live_sha)
    desired_matches = record is not None and record.matches(
        "file", final_mode, final_uid, final_gid, sha256=desired_sha)
    state = drift(record, live_matches, desired_matches)
    last = record.commit if record else None
    if live_sha != desired_sha:
        if action.secret:
            summary, diff = "content changed (secret)", None
        elif was_secret:
            summary, diff = "content changed (was secret)", None
        else:
            summary, diff = "content changed", live_diff(path, current, item.content)
        extra = attr_differences(live, mode, uid, gid)
        if extra:
            summary += "; " + ", ".join(extra)
        plan.changes.append(Change(
            action, "update", summary, path=path, diff=diff, drift=state, last_commit=last,
            was_secret=was_secret,
            args={"content": item.content, "mode": final_mode, "uid": final_uid,
                  "gid": final_gid}))
        return
    differences = attr_differences(live, mode, uid, gid)
    if differences:
        plan.changes.append(Change(
            action, "attrs", ", ".join(differences), path=path, drift=state, last_commit=last,
            args={"mode": mode, "uid": uid, "gid": gid, "sha256": desired_sha}))
        return
    keep_commit = record.commit if record is not None and record.sha256 == live_sha else None
    plan.in_sync[path] = wanted.model_copy(update={"commit": keep_commit or ctx.commit})


def apply(ctx: Context, change: Change) -> None:
    """Carry out a file change and record what was written (hash, never contents).

    A file that was secret and no longer is gets no backup of its old content, but its
    new record is no longer secret.
    """
    path = change.path
    action = change.action
    assert path is not None and isinstance(action, FileAction | TreeAction)
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
        for parent in missing_parents(ctx, path):
            ctx.system.mkdir(parent, _dir_mode(action, parent), None, None)
        validate = action.validate_cmd if isinstance(action, FileAction) else None
        ctx.system.write_atomic(path, args["content"], args["mode"], args["uid"], args["gid"],
                                validate, secret=secret)
    live = ctx.system.lstat(path)
    if live is None:
        raise OSError(f"{path} vanished right after it was written")
    content_sha = sha256(args["content"]) if "content" in args else args["sha256"]
    ctx.applied.paths[path] = Applied(type="file", action=action.id, mode=live.mode,
                                      uid=live.uid, gid=live.gid, sha256=content_sha,
                                      commit=ctx.commit, secret=action.secret or None)


def _dir_mode(action: FileAction | TreeAction, directory: str) -> int:
    """Mode of a directory created for a file: a tree's `dir-mode` at and below its root."""
    if isinstance(action, TreeAction) and action.dir_mode is not None and \
            (directory == action.path or directory.startswith(action.path.rstrip("/") + "/")):
        return action.dir_mode
    return DEFAULT_DIR_MODE


def declared_paths(ctx: Context) -> set[str]:
    """Every node path the config declares now (files, tree entries, directories, links)."""
    paths = {item.path for items in ctx.rendered.values() for item in items}
    for action in ctx.node.actions:
        if isinstance(action, DirectoryAction | SymlinkAction):
            paths.add(action.path)
    return paths


def _probe(ctx: Context, path: str) -> Stat | str | None:
    """The live state of an orphan, or why it cannot be looked at safely."""
    try:
        return ctx.system.lstat(path)
    except (OSError, UnsafePath) as exc:
        return str(exc) or exc.__class__.__name__


def forgotten(ctx: Context) -> list[str]:
    """Records of undeclared paths that no longer exist: nothing to do but forget them."""
    declared = declared_paths(ctx)
    return [p for p in ctx.applied.paths if p not in declared and _probe(ctx, p) is None]


def orphans(ctx: Context) -> list[Change]:
    """Paths applied before but no longer declared: removed only under `prune=true`.

    Deepest paths come first, so a pruned directory is emptied of its orphans before
    its own turn; a directory that still holds other things is kept and reported.
    """
    declared = declared_paths(ctx)
    changes: list[Change] = []
    prune = ctx.node.policy.prune
    for path, record in sorted(ctx.applied.paths.items(), reverse=True):
        if path in declared:
            continue
        live = _probe(ctx, path)
        if live is None:
            continue  # already gone: the record is dropped at the next apply
        summary = f"orphan {record.type}: no longer declared (written at " \
                  f"{(record.commit or '?')[:12]})"
        held = None if prune else "orphan; removed only with policy prune=true"
        if isinstance(live, str):
            held = f"cannot inspect it: {live}"
        elif live.kind == "directory":
            held = held or _not_empty(ctx, path, ctx.applied.paths, declared)
        elif live.kind not in ("file", "symlink"):
            held = f"it is now a {live.kind}; left in place"
        changes.append(Change(_orphan_action(record), "orphan-remove", summary, path=path,
                              held=held, last_commit=record.commit))
    return changes


def _not_empty(ctx: Context, path: str, records: dict[str, Applied], declared: set[str]) -> \
        str | None:
    """Why an orphan directory must stay: entries other than orphans pruned before it."""
    inside = [f"{path.rstrip('/')}/{name}" for name in ctx.system.listdir(path)]
    kept = [p for p in inside if p not in records or p in declared]
    if not kept:
        return None
    entries = "1 entry" if len(kept) == 1 else f"{len(kept)} entries"
    return f"directory still holds {entries} reconciler did not write; left in place"


def _orphan_action(record: Applied) -> FileAction:
    """A stand-in action naming the orphan's former owner, for reports and apply."""
    return FileAction(id=record.action, path="/", ensure="absent", severity=Severity.NONE,
                      origin=Origin(path="(last-applied state)", line=0),
                      declared_in="(no longer declared)", secret=bool(record.secret))
