"""Orphans: what this node applied before that the config no longer declares — paths,
packages, lines and blocks of files, fstab entries, accounts.

They are reported, and removed only under the policy `prune=true`: files, links and
empty directories; packages (dpkg --remove, severity restart); lines, blocks and fstab
entries (a filesystem stays mounted until it is unmounted); accounts (userdel and
groupdel: the home directory stays). Records of orphans that vanished on their own are
simply forgotten. Entries of a purged directory are the purge's business.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace

from reconciler.actions.declared import declared_keys
from reconciler.actions.fileedit import edit_file, read_text, text_digest
from reconciler.actions.group import RemoveGroup
from reconciler.actions.package import RemovePackage
from reconciler.actions.purge import purged_directories
from reconciler.actions.textedit import BlockEdit, Edit, FstabEdit, LineEdit
from reconciler.actions.user import RemoveUser
from reconciler.compile.nodeconfig import FileAction, GroupAction, Origin, Severity, UserAction
from reconciler.host import accounts
from reconciler.host import dpkg as packages
from reconciler.plan.change import ApplyContext, Change, Effect, Removed
from reconciler.plan.probe import Context
from reconciler.record.applied import Applied
from reconciler.system.interface import Stat, ToolError, UnsafePath

PATH_TYPES = ("file", "directory", "symlink")
NOT_PRUNED = "orphan; removed only with policy prune=true"
INSPECT_ERRORS = (OSError, UnsafePath, ValueError, ToolError)
FORMER = Origin(path="(last-applied state)", line=0)
GONE = "(no longer declared)"


@dataclass(frozen=True, kw_only=True)
class RemoveOrphan(Change):
    """Remove a path that is no longer declared (a secret file is not backed up)."""

    op = "orphan-remove"
    path: str
    key: str

    def apply(self, ctx: ApplyContext) -> Effect:
        if ctx.system.lstat(self.path) is not None:
            ctx.system.remove(self.path, secret=self.secret)
        return Removed(self.key)


@dataclass(frozen=True, kw_only=True)
class RemoveOrphanPart(Change):
    """Remove a line or block that is no longer declared from its file."""

    op = "orphan-edit"
    path: str
    key: str
    edit: Edit = field(repr=False, compare=False)

    def apply(self, ctx: ApplyContext) -> Effect:
        edit_file(ctx.system, self.path, self.edit)
        return Removed(self.key)


@dataclass(frozen=True, kw_only=True)
class RemoveOrphanPackage(RemovePackage):
    """Remove a package no longer declared (dpkg refuses while others depend on it)."""

    op = "orphan-remove-package"


def _inspect(ctx: Context, path: str) -> Stat | str | None:
    """The live state of an orphan path, or why it cannot be looked at safely."""
    try:
        return ctx.system.lstat(path)
    except (OSError, UnsafePath) as exc:
        return str(exc) or exc.__class__.__name__


def _undeclared(ctx: Context) -> list[tuple[str, Applied]]:
    """Records whose key the config no longer declares, deepest paths first (so a pruned
    directory is emptied of its orphans before its own turn)."""
    declared = declared_keys(ctx)
    purged = purged_directories(ctx)
    return [(key, record) for key, record in sorted(ctx.applied.items(), reverse=True)
            if key not in declared and posixpath.dirname(record.path or key) not in purged]


def forgotten(ctx: Context) -> list[str]:
    """Records of undeclared things that no longer exist: nothing to do but forget them."""
    return [key for key, record in _undeclared(ctx) if _gone(ctx, key, record)]


def orphans(ctx: Context) -> list[Change]:
    """What was applied before but is no longer declared: removed only under `prune=true`."""
    changes = []
    for key, record in _undeclared(ctx):
        if _gone(ctx, key, record):
            continue
        try:
            changes.append(_orphan(ctx, key, record))
        except INSPECT_ERRORS as exc:
            changes.append(RemoveOrphan(
                action=_orphan_action(record), summary=f"orphan {record.type} {key}",
                path=record.path or key, key=key, last_commit=record.commit,
                held=f"cannot inspect it: {str(exc) or exc.__class__.__name__}"))
    return changes


def _gone(ctx: Context, key: str, record: Applied) -> bool:
    if record.type in PATH_TYPES:
        return _inspect(ctx, record.path or key) is None
    try:
        return not _exists(ctx, key, record)
    except INSPECT_ERRORS:
        return False  # cannot tell: kept as an orphan, which says why


def _exists(ctx: Context, key: str, record: Applied) -> bool:
    name = key.partition(":")[2]
    if record.type == "package":
        return packages.query(ctx.system, name) is not None
    if record.type in ("user", "group"):
        database = accounts.read(ctx.system)
        if database is None:
            return False
        return name in (database.users if record.type == "user" else database.groups)
    return _part_edit(ctx, key, record) is not None


def _part_edit(ctx: Context, key: str, record: Applied) -> Edit | None:
    """The edit that removes an orphan line, block or fstab entry; None when it is gone."""
    assert record.path is not None
    text = read_text(ctx.system, record.path)
    if text is None:
        return None
    if record.type == "mount":
        edit: FstabEdit | BlockEdit | LineEdit = FstabEdit(key.partition(":")[2], None)
        return edit if edit.found(text) is not None else None
    if record.type == "block":
        name = key.rpartition("#")[2]
        found = re.search(rf"^(\S+) BEGIN reconciler {re.escape(name)}$", text, re.MULTILINE)
        return BlockEdit(name, found.group(1), None) if found else None
    line = next((line for line in text.splitlines()
                 if text_digest(ctx, line) == record.sha256), None)
    return LineEdit(line, None, False) if line is not None else None


def _orphan(ctx: Context, key: str, record: Applied) -> Change:
    name = key.partition(":")[2]
    summary = f"orphan {record.type} {name}: no longer declared (applied at " \
              f"{(record.commit or '?')[:12]})"
    change: Change
    match record.type:
        case "package":
            change = RemoveOrphanPackage(action=_orphan_action(record), summary=summary,
                                         name=name, severity=Severity.RESTART)
        case "user":
            stand_in = UserAction(id=key, name=name, ensure="absent", severity=Severity.NONE,
                                  origin=FORMER, declared_in=GONE)
            change = RemoveUser(action=stand_in, summary=summary, tool="userdel", args=(),
                                digest=None)
        case "group":
            former = GroupAction(id=key, name=name, ensure="absent", severity=Severity.NONE,
                                 origin=FORMER, declared_in=GONE)
            change = RemoveGroup(action=former, summary=summary, tool="groupdel", args=(),
                                 digest=None)
        case "line" | "block" | "mount":
            assert record.path is not None
            edit = _part_edit(ctx, key, record)
            assert edit is not None
            change = RemoveOrphanPart(action=_orphan_action(record), summary=summary,
                                      path=record.path, key=key, edit=edit)
        case _:
            return _orphan_path(ctx, key, record)
    return replace(change, held=None if ctx.node.policy.prune else NOT_PRUNED,
                   last_commit=record.commit)


def _orphan_path(ctx: Context, key: str, record: Applied) -> Change:
    path = record.path or key
    held = None if ctx.node.policy.prune else NOT_PRUNED
    live = _inspect(ctx, path)
    summary = f"orphan {record.type}: no longer declared (written at " \
              f"{(record.commit or '?')[:12]})"
    if isinstance(live, str):
        held = f"cannot inspect it: {live}"
    elif live is not None and live.kind == "directory":
        held = held or _not_empty(ctx, path)
    elif live is not None and live.kind not in ("file", "symlink"):
        held = f"it is now a {live.kind}; left in place"
    return RemoveOrphan(action=_orphan_action(record), summary=summary, path=path, key=key,
                        held=held, last_commit=record.commit)


def _not_empty(ctx: Context, path: str) -> str | None:
    """Why an orphan directory must stay: entries other than orphans pruned before it."""
    declared = declared_keys(ctx)
    inside = [f"{path.rstrip('/')}/{name}" for name in ctx.system.listdir(path)]
    kept = [p for p in inside if p not in ctx.applied or p in declared]
    if not kept:
        return None
    entries = "1 entry" if len(kept) == 1 else f"{len(kept)} entries"
    return f"directory still holds {entries} reconciler did not write; left in place"


def _orphan_action(record: Applied) -> FileAction:
    """A stand-in action naming the orphan's former owner, for reports and apply."""
    return FileAction(id=record.action, path="/", ensure="absent", severity=Severity.NONE,
                      origin=FORMER, declared_in=GONE, secret=bool(record.secret))
