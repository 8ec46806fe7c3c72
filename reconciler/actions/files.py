"""File and tree actions: rendered or copied content, mode and owner.

Reads never follow a symlink (the System refuses), so a diff can't leak a file the
config does not own; a symlink found where a file belongs is replaced, not followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reconciler.actions.common import (
    attr_differences,
    drift,
    live_diff,
    missing_parents,
    owner_ids,
    set_attrs,
)
from reconciler.compile.nodeconfig import FileAction, TreeAction
from reconciler.plan.change import ApplyContext, Change, Drift, Effect, Removed, Wrote
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied
from reconciler.render.rendered import RenderedFile
from reconciler.system.interface import Stat

DEFAULT_MODE = 0o644
SECRET_MODE = 0o600  # a secret file without a declared mode is readable by its owner only
DEFAULT_DIR_MODE = 0o755


@dataclass(frozen=True, kw_only=True)
class CreateFile(Change):
    """Write a file where there is none (or where a symlink is): parents first.

    A file that was secret and no longer is gets no backup of its old content, but its
    new record is no longer secret.
    """

    op = "create"
    action: FileAction | TreeAction
    path: str
    content: bytes = field(repr=False)
    mode: int
    uid: int | None
    gid: int | None

    def apply(self, ctx: ApplyContext) -> Effect:
        for parent in missing_parents(ctx.system, self.path):
            ctx.system.mkdir(parent, _dir_mode(self.action, parent), None, None)
        validate = self.action.validate_cmd if isinstance(self.action, FileAction) else None
        note = ctx.system.write_atomic(self.path, self.content, self.mode, self.uid, self.gid,
                                       validate, secret=self.secret)
        digest = ctx.digest(self.content, self.action.secret)
        return replace(_written(ctx, self.action, self.path, digest), note=note)


@dataclass(frozen=True, kw_only=True)
class UpdateFile(CreateFile):
    """Replace a file's content (atomically, backing up the old one unless secret)."""

    op = "update"


@dataclass(frozen=True, kw_only=True)
class FileAttrs(Change):
    """Fix a file's mode or owner in place; its content already matches."""

    op = "attrs"
    action: FileAction | TreeAction
    path: str
    mode: int | None
    uid: int | None
    gid: int | None
    sha256: str

    def apply(self, ctx: ApplyContext) -> Effect:
        set_attrs(ctx.system, self.path, self.mode, self.uid, self.gid)
        return _written(ctx, self.action, self.path, self.sha256)


@dataclass(frozen=True, kw_only=True)
class RemoveFile(Change):
    """Remove a file the config declares absent (a secret one is not backed up)."""

    op = "remove"
    path: str

    def apply(self, ctx: ApplyContext) -> Effect:
        if ctx.system.lstat(self.path) is not None:
            ctx.system.remove(self.path, secret=self.secret)
        return Removed(self.path)


def _written(ctx: ApplyContext, action: FileAction | TreeAction, path: str, digest: str) -> Wrote:
    """The record of a file just written: its hash and live attributes, never contents."""
    live = ctx.system.lstat(path)
    if live is None:
        raise OSError(f"{path} vanished right after it was written")
    return Wrote(path, Applied(type="file", action=action.id, mode=live.mode, uid=live.uid,
                               gid=live.gid, sha256=digest, commit=ctx.commit,
                               secret=action.secret or None))


def probe(ctx: Context, action: FileAction | TreeAction) -> ActionPlan:
    """Every file the action renders (one, or a whole tree) against the live node."""
    plan = ActionPlan(action)
    mode = SECRET_MODE if action.mode is None and action.secret else action.mode
    for position, item in enumerate(ctx.rendered.get(action.id, [])):
        if position and ctx.should_stop():
            plan.notes.append("probing stopped: the run was interrupted")
            break
        _probe_path(ctx, plan, item, mode)
        ctx.progress.advance()
    return plan


def _probe_path(ctx: Context, plan: ActionPlan, item: RenderedFile, mode: int | None) -> None:
    action = item.action
    path = item.path
    record = ctx.applied.get(path)
    was_secret = bool(record is not None and record.secret)
    last = record.commit if record else None
    live = ctx.system.lstat(path)
    if item.content is None:
        if live is None:
            return
        if live.kind not in ("file", "symlink"):
            raise ValueError(f"{path} is a {live.kind}; refusing to remove it as a file")
        plan.changes.append(RemoveFile(action=action, summary="remove file", path=path,
                                       last_commit=last, was_secret=was_secret))
        return
    uid, gid = owner_ids(ctx, action.owner, action.group)
    # A secret file is named by a keyed hash: its record gives nothing to guess from.
    desired_sha = ctx.digest(item.content, action.secret)
    if live is not None and (foreign := live.foreign_link(uid)):
        raise ValueError(f"{path} {foreign}")
    if live is None or live.kind == "symlink":
        plan.changes.append(_create(ctx, action, path, item.content, (mode, uid, gid), live,
                                    record))
        return
    if live.kind != "file":
        raise ValueError(f"{path} is a {live.kind}, not a regular file; refusing to touch it")
    current = ctx.system.read(path)
    live_sha = ctx.digest(current, action.secret)
    # The record names contents as it did when written (a file may have become secret).
    same = record is None or bool(record.secret) == action.secret
    recorded_live = live_sha if same else ctx.digest(current, not action.secret)
    recorded_desired = desired_sha if same else ctx.digest(item.content, not action.secret)
    final_mode = mode if mode is not None else live.mode
    final_uid = uid if uid is not None else live.uid
    final_gid = gid if gid is not None else live.gid
    live_matches = record is not None and record.matches(
        "file", live.mode, live.uid, live.gid, sha256=recorded_live)
    desired_matches = record is not None and record.matches(
        "file", final_mode, final_uid, final_gid, sha256=recorded_desired)
    state = drift(record, live_matches, desired_matches)
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
        plan.changes.append(UpdateFile(
            action=action, summary=summary, path=path, diff=diff, drift=state, last_commit=last,
            was_secret=was_secret, content=item.content, mode=final_mode, uid=final_uid,
            gid=final_gid))
        return
    differences = attr_differences(live, mode, uid, gid)
    if differences:
        plan.changes.append(FileAttrs(
            action=action, summary=", ".join(differences), path=path, drift=state,
            last_commit=last, mode=mode, uid=uid, gid=gid, sha256=desired_sha))
        return
    keep_commit = record.commit if record is not None and record.sha256 == recorded_live else None
    plan.in_sync[path] = Applied(type="file", action=action.id, mode=final_mode, uid=final_uid,
                                 gid=final_gid, sha256=desired_sha,
                                 commit=keep_commit or ctx.commit, secret=action.secret or None)


def _create(
    ctx: Context, action: FileAction | TreeAction, path: str, content: bytes,
    attrs: tuple[int | None, int | None, int | None], live: Stat | None, record: Applied | None,
) -> CreateFile:
    """A file for a missing path, or for a path where a symlink stands."""
    if live is None:
        parents = missing_parents(ctx.system, path)
        summary = "create" + (" (secret)" if action.secret else "") + \
            (f" (and directories {', '.join(parents)})" if parents else "")
        diff = None if action.secret else live_diff(path, b"", content)
    else:
        summary, diff = f"replace symlink (→ {live.link_target}) with a file", None
    mode, uid, gid = attrs
    return CreateFile(action=action, summary=summary, path=path, diff=diff,
                      drift=Drift.EDITED if record is not None else Drift.PENDING,
                      last_commit=record.commit if record else None, content=content,
                      mode=mode if mode is not None else DEFAULT_MODE, uid=uid, gid=gid)


def _dir_mode(action: FileAction | TreeAction, directory: str) -> int:
    """Mode of a directory created for a file: a tree's `dir-mode` at and below its root."""
    if isinstance(action, TreeAction) and action.dir_mode is not None and \
            (directory == action.path or directory.startswith(action.path.rstrip("/") + "/")):
        return action.dir_mode
    return DEFAULT_DIR_MODE
