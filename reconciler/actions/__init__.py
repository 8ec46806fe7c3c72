"""Actions: each kind knows how to say what differs (`check`) and how to fix it (`apply`).

Handlers are plain functions per kind; this module dispatches to them and turns a
failure to probe into an `ActionPlan` error instead of an exception.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.actions import command, directory, files, package, service, symlink
from reconciler.compile.nodeconfig import Action
from reconciler.plan.build import ActionPlan, Change, Context
from reconciler.system.interface import ToolError, UnsafePath

# What probing one action can raise: it makes that action fail, never the whole run.
PROBE_ERRORS = (OSError, UnsafePath, KeyError, ValueError, ToolError)

Checker = Callable[[Context, Action], ActionPlan]
Applier = Callable[[Context, Change], None]

_CHECK: dict[str, Checker] = {
    "file": files.check,  # type: ignore[dict-item]
    "tree": files.check,  # type: ignore[dict-item]
    "directory": directory.check,  # type: ignore[dict-item]
    "symlink": symlink.check,  # type: ignore[dict-item]
    "package": package.check,  # type: ignore[dict-item]
    "service": service.check,  # type: ignore[dict-item]
    "command": command.check,  # type: ignore[dict-item]
}
_APPLY: dict[str, Applier] = {
    "file": files.apply,
    "tree": files.apply,
    "orphan": files.apply,
    "directory": directory.apply,
    "symlink": symlink.apply,
    "package": package.apply,
    "service": service.apply,
    "command": command.apply,
}


def check_action(ctx: Context, action: Action) -> ActionPlan:
    """Ask one action what differs; a probe that fails becomes the plan's error."""
    try:
        return _CHECK[action.kind](ctx, action)
    except PROBE_ERRORS as exc:
        return ActionPlan(action, error=_describe(exc))


def apply_change(ctx: Context, change: Change) -> None:
    """Carry out one change through the context's system (raises on failure)."""
    kind = "orphan" if change.op.startswith("orphan") else change.action.kind
    _APPLY[kind](ctx, change)


def orphan_changes(ctx: Context) -> tuple[list[Change], list[str]]:
    """Orphans to report (or prune), and records of vanished orphans to forget."""
    return files.orphans(ctx), files.forgotten(ctx)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return text or exc.__class__.__name__
