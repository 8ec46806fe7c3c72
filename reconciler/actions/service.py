"""Service actions: running or stopped, enabled or not, and reload/restart when notified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconciler.actions.command import HOST_ONLY
from reconciler.compile.nodeconfig import ServiceAction
from reconciler.host import services
from reconciler.plan.change import ApplyContext, Change, Effect, Started
from reconciler.plan.probe import ActionPlan, Context


@dataclass(frozen=True, kw_only=True)
class DriveService(Change):
    """Drive the service with one verb (systemctl, or the commands the class declares)."""

    verb: ClassVar[services.Verb]
    action: ServiceAction

    def apply(self, ctx: ApplyContext) -> Effect:
        services.drive(ctx.system, self.action, self.verb)
        return None


@dataclass(frozen=True, kw_only=True)
class StartService(DriveService):
    op = "start"
    verb = "start"

    def apply(self, ctx: ApplyContext) -> Effect:
        super().apply(ctx)
        return Started(self.action.id)


@dataclass(frozen=True, kw_only=True)
class StopService(DriveService):
    op = "stop"
    verb = "stop"


@dataclass(frozen=True, kw_only=True)
class EnableService(DriveService):
    op = "enable"
    verb = "enable"


@dataclass(frozen=True, kw_only=True)
class DisableService(DriveService):
    op = "disable"
    verb = "disable"


@dataclass(frozen=True, kw_only=True)
class NotifiedService(DriveService):
    """A reload or restart asked for by changed sources; needless when this run just
    started the service with the new config, or when it is meant to stay down."""

    def needless(self, ctx: ApplyContext) -> str | None:
        """Why this reload or restart need not run (the executor skips it), or None."""
        if self.action.id in ctx.started:
            return "not needed: this run started the service with the new files"
        if self.action.state == "stopped":
            return "not needed: the service is meant to stay stopped"
        return None


@dataclass(frozen=True, kw_only=True)
class ReloadService(NotifiedService):
    op = "notify-reload"
    verb = "reload"


@dataclass(frozen=True, kw_only=True)
class RestartService(NotifiedService):
    op = "notify-restart"
    verb = "restart"


def probe(ctx: Context, action: ServiceAction) -> ActionPlan:
    """Whether the service runs and is enabled as declared (unknown under another root)."""
    plan = ActionPlan(action)
    state = services.probe(ctx.system, action)
    unknown_held = HOST_ONLY if not ctx.system.runs_host_commands else None
    if action.state is not None and state.running != (action.state == "running"):
        drive: type[DriveService] = StartService if action.state == "running" else StopService
        summary = f"{drive.op} {action.name}" + \
            (" (state unknown)" if state.running is None else "")
        plan.changes.append(drive(action=action, summary=summary,
                                  held=unknown_held if state.running is None else None))
    if action.enabled is not None and state.enabled != action.enabled:
        drive = EnableService if action.enabled else DisableService
        summary = f"{drive.op} {action.name}" + \
            (" (state unknown)" if state.enabled is None else "")
        plan.changes.append(drive(action=action, summary=summary,
                                  held=unknown_held if state.enabled is None else None))
    if state.note:
        plan.notes.append(state.note)
    return plan
