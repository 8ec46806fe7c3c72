"""Changes that edit part of a file no action owns whole (a line, a block, an fstab entry),
and the three states of such a part.

An edit is planned against the live file and applied again to what the file holds
at apply time, so several actions can edit one file in a run without losing each
other's work. The file is replaced atomically through the System, keeping its mode and
owner; the last-applied record keeps the sha256 of the part, keyed by action id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reconciler.actions.common import drift, live_diff, missing_parents
from reconciler.actions.textedit import Edit, decode, encode
from reconciler.plan.change import ApplyContext, Change, Drift, Effect, Removed, Wrote
from reconciler.plan.probe import Context
from reconciler.record.applied import Applied
from reconciler.system.interface import System

NEW_FILE_MODE = 0o644
PARENT_MODE = 0o755
PartKind = Literal["line", "block", "mount", "file"]


def read_text(system: System, path: str) -> str | None:
    """The file's text, or None when there is no file; anything but a regular file is
    refused (the System never follows a symlink)."""
    live = system.lstat(path)
    if live is None:
        return None
    if live.kind != "file":
        raise ValueError(f"{path} is a {live.kind}, not a regular file; refusing to edit it")
    return decode(system.read(path))


def edit_file(system: System, path: str, edit: Edit, mode: int = NEW_FILE_MODE,
              uid: int | None = None, gid: int | None = None, *, secret: bool = False) -> None:
    """Apply `edit` to the file as it is now and replace it atomically if that changed it;
    a missing file (and its parents) is created with `mode`, `uid`, `gid`. An existing
    file keeps its own mode and owner, and is backed up unless it held a `secret`."""
    current = read_text(system, path)
    new = edit(current or "")
    if current is not None and new == current:
        return
    live = system.lstat(path)
    if live is None:
        for parent in missing_parents(system, path):
            system.mkdir(parent, PARENT_MODE, None, None)
        system.write_atomic(path, encode(new), mode, uid, gid, secret=secret)
    else:
        system.write_atomic(path, encode(new), live.mode, None, None, secret=secret)


@dataclass(frozen=True, kw_only=True)
class EditPart(Change):
    """Write one part of a file (`edit`) and remember its hash under `key` (the action's
    id; the path itself for a file written whole), or forget it when the part was
    removed (`digest` None)."""

    op = "edit"
    path: str
    key: str
    edit: Edit = field(repr=False, compare=False)
    kind: PartKind
    digest: str | None  # sha256 of the part as written; None: the part is gone
    mode: int = NEW_FILE_MODE  # for a file that does not exist yet

    def apply(self, ctx: ApplyContext) -> Effect:
        edit_file(ctx.system, self.path, self.edit, self.mode, secret=self.secret)
        if self.digest is None:
            return Removed(self.key)
        return Wrote(self.key, Applied(type=self.kind, action=self.action.id,
                                       path=None if self.key == self.path else self.path,
                                       sha256=self.digest, commit=ctx.commit))


@dataclass(frozen=True)
class Part:
    """One part of a file as planned: what the file holds, what the edit makes of it, and
    the part's live and desired text (None where there is none)."""

    path: str
    before: str | None  # the whole file; None when it does not exist
    after: str
    live: str | None
    desired: str | None

    @property
    def in_sync(self) -> bool:
        return self.before is not None and self.before == self.after

    def diff(self) -> str:
        return live_diff(self.path, encode(self.before or ""), encode(self.after))


def held_secret(ctx: Context, path: str) -> bool:
    """Whether this node last wrote `path` as a secret file: an edit of it now shows no
    diff and keeps no backup of what it held."""
    record = ctx.applied.get(path)
    return bool(record is not None and record.secret)


def text_digest(ctx: Context, text: str) -> str:
    """How records name a part's text: its plain sha256 (parts are never secret)."""
    return ctx.digest(encode(text), False)


def part_drift(ctx: Context, key: str, part: Part) -> tuple[Drift, str | None]:
    """Pending or edited by hand, judged against the part's last-applied hash; and the
    commit that wrote it."""
    record = ctx.applied.get(key)
    if record is None:
        return Drift.PENDING, None
    live = text_digest(ctx, part.live) if part.live is not None else None
    desired = text_digest(ctx, part.desired) if part.desired is not None else None
    return drift(record, live == record.sha256, desired == record.sha256), record.commit


def kept_record(ctx: Context, key: str, action: str, kind: PartKind, path: str, text: str) -> \
        Applied:
    """The record of a part found as desired: the commit that wrote it, if it still holds."""
    digest = text_digest(ctx, text)
    record = ctx.applied.get(key)
    commit = record.commit if record is not None and record.sha256 == digest else ctx.commit
    return Applied(type=kind, action=action, path=None if key == path else path, sha256=digest,
                   commit=commit)
