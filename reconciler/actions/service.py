"""Service actions: running or stopped, enabled or not, and reload/restart when notified."""

from __future__ import annotations

from reconciler.actions.command import HOST_ONLY
from reconciler.compile.nodeconfig import ServiceAction
from reconciler.host import services
from reconciler.plan.build import ActionPlan, Change, Context


def check(ctx: Context, action: ServiceAction) -> ActionPlan:
    plan = ActionPlan(action)
    state = services.probe(ctx.system, action)
    unknown_held = HOST_ONLY if not ctx.system.runs_host_commands else None
    if action.state is not None and state.running != (action.state == "running"):
        op = "start" if action.state == "running" else "stop"
        summary = f"{op} {action.name}" + (" (state unknown)" if state.running is None else "")
        plan.changes.append(Change(action, op, summary,
                                   held=unknown_held if state.running is None else None))
    if action.enabled is not None and state.enabled != action.enabled:
        op = "enable" if action.enabled else "disable"
        summary = f"{op} {action.name}" + (" (state unknown)" if state.enabled is None else "")
        plan.changes.append(Change(action, op, summary,
                                   held=unknown_held if state.enabled is None else None))
    if state.note:
        plan.notes.append(state.note)
    return plan


_VERBS: dict[str, services.Verb] = {
    "start": "start",
    "stop": "stop",
    "enable": "enable",
    "disable": "disable",
    "notify-reload": "reload",
    "notify-restart": "restart",
}


def apply(ctx: Context, change: Change) -> None:
    action = change.action
    assert isinstance(action, ServiceAction)
    verb = _VERBS.get(change.op)
    if verb is None:
        raise ValueError(f"unknown service operation {change.op!r}")
    if change.op.startswith("notify-") and (action.id in ctx.started
                                            or action.state == "stopped"):
        return  # just started with the new config, or meant to stay down
    services.drive(ctx.system, action, verb)
    if verb == "start":
        ctx.started.add(action.id)
