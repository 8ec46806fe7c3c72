"""Authorized-keys actions: a user's SSH keys, as the whole authorized_keys file
(`exclusive`: a key added by hand is drift, and removed) or as a managed block in it
(keys outside the block are the user's own).

The file is the user's, mode 0600, in a ~/.ssh of mode 0700 (what sshd's StrictModes
asks). A user that does not exist yet but is declared in the same run is looked up
again when the keys are written.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Literal

from reconciler.actions.common import missing_parents
from reconciler.actions.fileedit import (
    Part,
    edit_file,
    kept_record,
    part_drift,
    read_text,
    text_digest,
)
from reconciler.actions.textedit import BlockEdit, Edit, Whole
from reconciler.compile.nodeconfig import AuthorizedKeysAction, UserAction
from reconciler.compile.sshkeys import comment
from reconciler.host import accounts
from reconciler.plan.change import ApplyContext, Change, Effect, HostOnly, Wrote
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied
from reconciler.system.interface import System

KEYS_MODE = 0o600
SSH_DIR_MODE = 0o700
PARENT_MODE = 0o755
BLOCK_NAME = "authorized-keys"


@dataclass(frozen=True, kw_only=True)
class WriteKeys(Change):
    """Write the keys (the whole file or its block) as the user, mode 0600."""

    op = "keys"
    action: AuthorizedKeysAction
    path: str
    edit: Edit = field(repr=False, compare=False)
    kind: Literal["file", "block"]
    digest: str

    def apply(self, ctx: ApplyContext) -> Effect:
        system = ctx.system
        uid, gid = _owner(system, self.action.user)
        directory = posixpath.dirname(self.path)
        if system.lstat(directory) is None:
            if self.action.path is None:
                home = posixpath.dirname(directory)
                if system.lstat(home) is None:
                    raise OSError(f"the home directory {home} of {self.action.user} is missing")
                system.mkdir(directory, SSH_DIR_MODE, uid, gid)
            else:
                for parent in [*missing_parents(system, directory), directory]:
                    system.mkdir(parent, PARENT_MODE, None, None)
        edit_file(system, self.path, self.edit, KEYS_MODE, uid, gid)
        live = system.lstat(self.path)
        if live is not None and live.mode != KEYS_MODE:
            system.chmod(self.path, KEYS_MODE)
        if live is not None and uid is not None and (live.uid, live.gid) != (uid, gid):
            system.chown(self.path, uid, gid)
        return Wrote(self.action.id, Applied(type=self.kind, action=self.action.id,
                                             path=self.path, sha256=self.digest,
                                             commit=ctx.commit))


def _owner(system: System, name: str) -> tuple[int | None, int | None]:
    """The user's uid and gid to give the file (None when not running as root)."""
    database = accounts.read(system)
    user = database.users.get(name) if database is not None else None
    if user is None:
        raise OSError(f"user {name} does not exist on the node")
    return (user.uid, user.gid) if system.can_chown else (None, None)


def probe(ctx: Context, action: AuthorizedKeysAction) -> ActionPlan:
    """The user's authorized_keys (or its block) against the declared keys."""
    plan = ActionPlan(action)
    path, uid, held = _where(ctx, action)
    keys = "".join(f"{key}\n" for key in action.keys)
    before = read_text(ctx.system, path)
    edit: Whole | BlockEdit
    if action.exclusive:
        desired = f"# Managed by reconciler ({action.id}): a key added here is removed at " \
                  f"the next run.\n{keys}"
        edit, live_part = Whole(desired), before
    else:
        desired = keys
        edit = BlockEdit(BLOCK_NAME, "#", keys)
        live_part = edit.found(before or "")
    part = Part(path, before, edit(before or ""), live_part, desired)
    kind: Literal["file", "block"] = "file" if action.exclusive else "block"
    attrs = _attr_differences(ctx, path, uid) if before is not None else []
    if part.in_sync and not attrs:
        plan.in_sync[action.id] = kept_record(ctx, action.id, action.id, kind, path, desired)
        return plan
    state, last = part_drift(ctx, action.id, part)
    summary = "; ".join([*_key_changes(part, action), *attrs])
    plan.changes.append(WriteKeys(
        action=action, summary=summary, path=path, diff=None if part.in_sync else part.diff(),
        drift=state, last_commit=last, held=held, edit=edit, kind=kind,
        digest=text_digest(ctx, desired)))
    return plan


def _where(ctx: Context, action: AuthorizedKeysAction) -> tuple[str, int | None, str | None]:
    """The keys file, the user's uid (None when not known yet), and why writing must be
    held (the user is declared but cannot be created under this root)."""
    database = accounts.read(ctx.system)
    user = database.users.get(action.user) if database is not None else None
    if user is not None:
        home = user.home
        return action.path or f"{home.rstrip('/')}/.ssh/authorized_keys", user.uid, None
    declared = ctx.node.action(f"user:{action.user}")
    if not isinstance(declared, UserAction) or declared.ensure != "present":
        raise ValueError(f"user {action.user} does not exist on the node and no user action "
                         "declares it")
    home = declared.home or f"/home/{action.user}"
    held = accounts.unmanageable(ctx.system)
    if held is not None:
        held = HostOnly(f"user {action.user} cannot be created: {held}")
    return action.path or f"{home.rstrip('/')}/.ssh/authorized_keys", None, held


def _attr_differences(ctx: Context, path: str, uid: int | None) -> list[str]:
    live = ctx.system.lstat(path)
    found = []
    if live is not None and live.mode != KEYS_MODE:
        found.append(f"mode {live.mode:04o} → {KEYS_MODE:04o}")
    if live is not None and uid is not None and ctx.system.can_chown and live.uid != uid:
        found.append(f"owner {live.uid} → {uid}")
    return found


def _key_changes(part: Part, action: AuthorizedKeysAction) -> list[str]:
    """"add keys alice@sa, bob" and "remove key mallory (not in the repo)"."""
    live = {line for line in (part.live or "").splitlines()
            if line.strip() and not line.startswith("#")}
    wanted = set(action.keys)
    said = []
    added = sorted(comment(key) for key in wanted - live)
    removed = sorted(comment(key) for key in live - wanted)
    if added:
        verb = "create with" if part.before is None else "add"
        said.append(f"{verb} {'key' if len(added) == 1 else 'keys'} {', '.join(added)}")
    elif part.before is None:
        said.append("create")
    if removed:
        said.append(f"remove {'key' if len(removed) == 1 else 'keys'} {', '.join(removed)} "
                    "(not in the repo)")
    if not said and not part.in_sync:
        said.append("rewrite the managed keys")
    return said
