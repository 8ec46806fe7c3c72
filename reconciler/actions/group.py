"""Group actions: a local group with its gid, or no such group (groupadd, groupmod,
groupdel, under another root with their own --root)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.accountstate import account_drift, fields_digest, kept
from reconciler.compile.nodeconfig import GroupAction
from reconciler.host import accounts
from reconciler.plan.change import ApplyContext, Change, Effect, Removed, Wrote, host_only
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied


@dataclass(frozen=True, kw_only=True)
class RunGroupTool(Change):
    """Run groupadd, groupmod or groupdel with the planned arguments."""

    action: GroupAction
    tool: str
    args: tuple[str, ...]
    digest: str | None  # the managed fields as they will be; None: the group goes

    def apply(self, ctx: ApplyContext) -> Effect:
        accounts.run(ctx.system, self.tool, self.action.name, self.args)
        if self.digest is None:
            return Removed(self.action.id)
        return Wrote(self.action.id, Applied(type="group", action=self.action.id,
                                             sha256=self.digest, commit=ctx.commit))


@dataclass(frozen=True, kw_only=True)
class CreateGroup(RunGroupTool):
    op = "groupadd"


@dataclass(frozen=True, kw_only=True)
class ModifyGroup(RunGroupTool):
    op = "groupmod"


@dataclass(frozen=True, kw_only=True)
class RemoveGroup(RunGroupTool):
    op = "groupdel"


def desired_fields(action: GroupAction) -> dict[str, str]:
    """The fields this action manages, as they should read."""
    return {} if action.gid is None else {"gid": str(action.gid)}


def probe(ctx: Context, action: GroupAction) -> ActionPlan:
    """The group in the root's /etc/group against the declared one."""
    plan = ActionPlan(action)
    held = host_only(accounts.unmanageable(ctx.system))
    database = accounts.read(ctx.system)
    live = database.groups.get(action.name) if database is not None else None
    if action.ensure == "absent":
        if live is not None:
            plan.changes.append(RemoveGroup(action=action, summary=f"remove group {action.name}",
                                            held=held, tool="groupdel", args=(), digest=None))
        return plan
    wanted = desired_fields(action)
    digest = fields_digest(ctx, wanted)
    if live is None:
        args = (*(("--gid", str(action.gid)) if action.gid is not None else ()),
                *(("--system",) if action.system else ()))
        detail = f" (gid {action.gid})" if action.gid is not None else ""
        plan.changes.append(CreateGroup(action=action, summary=f"create group {action.name}"
                                        + detail, held=held, tool="groupadd", args=args,
                                        digest=digest))
        return plan
    found = {"gid": str(live.gid)}
    if action.gid is not None and live.gid != action.gid:
        state, last = account_drift(ctx, action.id, {k: found[k] for k in wanted}, wanted)
        plan.changes.append(ModifyGroup(
            action=action, summary=f"gid {live.gid} → {action.gid}", drift=state,
            last_commit=last, held=held, tool="groupmod", args=("--gid", str(action.gid)),
            digest=digest))
        return plan
    plan.in_sync[action.id] = kept(ctx, action.id, "group", digest)
    return plan
