"""Actions: each kind knows how to say what differs (`probe`) and returns typed changes
that apply themselves.

Dispatch is by the action's type, so each kind's probe gets its own action class; a
failure to probe becomes the `ActionPlan`'s error instead of an exception. Each kind's
module is imported when an action of that kind is first probed: a run that plans only
files (drift alone) does not build the change classes of users, mounts or packages.
"""

from __future__ import annotations

from typing import assert_never

from reconciler.actions import command
from reconciler.compile.nodeconfig import (
    Action,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
    CommandAction,
    DirectoryAction,
    FileAction,
    GroupAction,
    LineAction,
    MountAction,
    PackageAction,
    ServiceAction,
    Severity,
    SymlinkAction,
    TreeAction,
    UserAction,
)
from reconciler.plan.change import Change
from reconciler.plan.probe import ActionPlan, Context
from reconciler.system.interface import ToolError, UnsafePath

# What probing one action can raise: it makes that action fail, never the whole run.
PROBE_ERRORS = (OSError, UnsafePath, KeyError, ValueError, ToolError)
HOST_ONLY = command.HOST_ONLY


def probe_action(ctx: Context, action: Action) -> ActionPlan:
    """Ask one action what differs; a probe that fails becomes the plan's error."""
    try:
        return _probe(ctx, action)
    except PROBE_ERRORS as exc:
        return ActionPlan(action, error=_describe(exc))


def _probe(ctx: Context, action: Action) -> ActionPlan:
    match action:
        case FileAction() | TreeAction():
            from reconciler.actions import files
            return files.probe(ctx, action)
        case DirectoryAction():
            from reconciler.actions import directory
            return directory.probe(ctx, action)
        case SymlinkAction():
            from reconciler.actions import symlink
            return symlink.probe(ctx, action)
        case PackageAction():
            from reconciler.actions import package
            return package.probe(ctx, action)
        case ServiceAction():
            from reconciler.actions import service
            return service.probe(ctx, action)
        case CommandAction():
            return command.probe(ctx, action)
        case GroupAction():
            from reconciler.actions import group
            return group.probe(ctx, action)
        case UserAction():
            from reconciler.actions import user
            return user.probe(ctx, action)
        case AuthorizedKeysAction():
            from reconciler.actions import authorized_keys
            return authorized_keys.probe(ctx, action)
        case AptSourceAction():
            from reconciler.actions import apt_source
            return apt_source.probe(ctx, action)
        case MountAction():
            from reconciler.actions import mount
            return mount.probe(ctx, action)
        case LineAction() | BlockAction():
            from reconciler.actions import lines
            return lines.probe(ctx, action)
        case _:
            assert_never(action)


def notification(
    action: ServiceAction | CommandAction, verb: str, summary: str, sources: tuple[str, ...],
    severity: Severity,
) -> Change:
    """The change a notification asks of its target: reload or restart a service, run a
    command (`verb` "run")."""
    from reconciler.actions import service

    if isinstance(action, CommandAction):
        return command.RunNotifiedCommand(action=action, summary=summary, notified_by=sources,
                                          severity=severity)
    drive = service.RestartService if verb == "restart" else service.ReloadService
    return drive(action=action, summary=summary, notified_by=sources, severity=severity)


def refresh_lists(ctx: Context, plans: list[ActionPlan]) -> None:
    """The run's one `apt-get update`, where it is needed (see apt_source.py): only APT
    sources and packages ask for one."""
    if any(isinstance(plan.action, AptSourceAction | PackageAction) for plan in plans):
        from reconciler.actions import apt_source

        apt_source.refresh_lists(ctx, plans)


def orphan_changes(ctx: Context) -> tuple[list[Change], list[str]]:
    """Orphans to report (or prune), and records of vanished orphans to forget."""
    from reconciler.actions import orphans

    return orphans.orphans(ctx), orphans.forgotten(ctx)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return text or exc.__class__.__name__
