"""User actions: a local account with the declared uid, groups, home, shell and comment,
or no such account (useradd, usermod, userdel, under another root with their --root).

Only the attributes an action gives are managed; `groups` is the exact set of
supplementary groups. No password is ever set or shown: accounts log in with keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.accountstate import account_drift, fields_digest, kept
from reconciler.compile.nodeconfig import UserAction
from reconciler.host import accounts
from reconciler.plan.change import ApplyContext, Change, Effect, Removed, Wrote, host_only
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied

# Field → (useradd/usermod option, how a report names it)
_OPTIONS = {
    "uid": ("--uid", "uid"),
    "group": ("--gid", "group"),
    "groups": ("--groups", "groups"),
    "home": ("--home-dir", "home"),
    "shell": ("--shell", "shell"),
    "comment": ("--comment", "comment"),
}


@dataclass(frozen=True, kw_only=True)
class RunUserTool(Change):
    """Run useradd, usermod or userdel with the planned arguments."""

    action: UserAction
    tool: str
    args: tuple[str, ...]
    digest: str | None  # the managed fields as they will be; None: the account goes

    def apply(self, ctx: ApplyContext) -> Effect:
        accounts.run(ctx.system, self.tool, self.action.name, self.args)
        if self.digest is None:
            return Removed(self.action.id)
        return Wrote(self.action.id, Applied(type="user", action=self.action.id,
                                             sha256=self.digest, commit=ctx.commit))


@dataclass(frozen=True, kw_only=True)
class CreateUser(RunUserTool):
    op = "useradd"


@dataclass(frozen=True, kw_only=True)
class ModifyUser(RunUserTool):
    op = "usermod"


@dataclass(frozen=True, kw_only=True)
class RemoveUser(RunUserTool):
    """userdel without --remove: the home directory and mail spool stay."""

    op = "userdel"


def desired_fields(action: UserAction) -> dict[str, str]:
    """The fields this action manages, as /etc/passwd and /etc/group should say them."""
    found = {"uid": None if action.uid is None else str(action.uid), "group": action.group,
             "groups": None if action.groups is None else ",".join(sorted(set(action.groups))),
             "home": action.home, "shell": action.shell, "comment": action.comment}
    return {name: value for name, value in found.items() if value is not None}


def _live_fields(database: accounts.Accounts, user: accounts.User, action: UserAction) -> \
        dict[str, str]:
    group = str(user.gid) if action.group is not None and action.group.isdigit() \
        else database.group_name(user.gid)
    return {"uid": str(user.uid), "group": group,
            "groups": ",".join(database.member_of(user.name)), "home": user.home,
            "shell": user.shell, "comment": user.comment}


def probe(ctx: Context, action: UserAction) -> ActionPlan:
    """The account in the root's /etc/passwd and /etc/group against the declared one."""
    plan = ActionPlan(action)
    held = host_only(accounts.unmanageable(ctx.system))
    database = accounts.read(ctx.system)
    user = database.users.get(action.name) if database is not None else None
    if action.ensure == "absent":
        if user is not None:
            plan.changes.append(RemoveUser(action=action, summary=f"remove user {action.name} "
                                           f"(uid {user.uid}; its home stays)", held=held,
                                           tool="userdel", args=(), digest=None))
        return plan
    wanted = desired_fields(action)
    digest = fields_digest(ctx, wanted)
    if database is None or user is None:
        args = [arg for name, value in wanted.items() if value or name != "groups"
                for arg in (_OPTIONS[name][0], value)]
        args += ["--system"] if action.system else ["--create-home"]
        shown = ", ".join(f"{_OPTIONS[name][1]} {value or '(none)'}"
                          for name, value in wanted.items())
        plan.changes.append(CreateUser(
            action=action, summary=f"create user {action.name}" + (f" ({shown})" if shown else ""),
            held=held, tool="useradd", args=tuple(args), digest=digest))
        return plan
    live = {name: value for name, value in _live_fields(database, user, action).items()
            if name in wanted}
    differ = [name for name in wanted if live[name] != wanted[name]]
    if not differ:
        plan.in_sync[action.id] = kept(ctx, action.id, "user", digest)
        return plan
    state, last = account_drift(ctx, action.id, live, wanted)
    summary = ", ".join(f"{_OPTIONS[name][1]} {live[name] or '(none)'} → "
                        f"{wanted[name] or '(none)'}" for name in differ)
    plan.changes.append(ModifyUser(
        action=action, summary=summary, drift=state, last_commit=last, held=held,
        tool="usermod", args=tuple(arg for name in differ
                                   for arg in (_OPTIONS[name][0], wanted[name])),
        digest=digest))
    return plan
