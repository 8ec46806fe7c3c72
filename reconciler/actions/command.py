"""Command actions: run when the guards say so (or when notified, if refresh-only).

Guards (`creates`, `unless`, `onlyif`) must not change anything; they run in audit
mode too. A timeout kills the command's whole process group (the System does that).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.compile.nodeconfig import CommandAction
from reconciler.plan.change import ApplyContext, Change, Effect, HostOnly
from reconciler.plan.probe import ActionPlan, Context
from reconciler.system.interface import System

HOST_ONLY = HostOnly("runs on the host; not run because --root is not /")


def _guard_env(action: CommandAction) -> dict[str, str]:
    return dict(action.env)


def _cwd(system: System, action: CommandAction) -> str | None:
    return system.host_path(action.cwd) if action.cwd else None


class CommandFailed(Exception):
    """A command exited non-zero or timed out."""


@dataclass(frozen=True, kw_only=True)
class RunCommand(Change):
    """Run the command; a command runs at most once per run, however many reasons it has."""

    op = "run"
    action: CommandAction

    def apply(self, ctx: ApplyContext) -> Effect:
        action = self.action
        result = ctx.system.run(action.run, timeout=action.timeout, cwd=_cwd(ctx.system, action),
                                env=_guard_env(action), mutates=True)
        if result.timed_out:
            raise CommandFailed(f"timed out after {action.timeout:g}s (process group killed)")
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            said = f": {' / '.join(tail)}" if tail else ""
            raise CommandFailed(f"exited {result.returncode}{said}")
        return None


@dataclass(frozen=True, kw_only=True)
class RunNotifiedCommand(RunCommand):
    """Run the command because sources that notify it changed."""

    op = "notify-run"


def probe(ctx: Context, action: CommandAction) -> ActionPlan:
    """Whether the guards say the command should run; a refresh-only one runs only when
    notified."""
    plan = ActionPlan(action)
    if action.refresh_only:
        return plan
    if action.creates is not None and ctx.system.lstat(action.creates) is not None:
        return plan
    if not ctx.system.runs_host_commands:
        if action.unless or action.onlyif:
            plan.notes.append("guards not evaluated: --root is not /")
        plan.changes.append(RunCommand(action=action, summary=f"run: {action.run}",
                                       held=HOST_ONLY))
        return plan
    reasons = []
    if action.unless:
        code = _guard(ctx, action, "unless", action.unless)
        if code == 0:
            return plan
        reasons.append(f"unless exited {code}")
    if action.onlyif:
        if _guard(ctx, action, "onlyif", action.onlyif) != 0:
            return plan
        reasons.append("onlyif exited 0")
    if action.creates:
        reasons.append(f"{action.creates} is missing")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    plan.changes.append(RunCommand(action=action, summary=f"run: {action.run}{why}"))
    return plan


def _guard(ctx: Context, action: CommandAction, which: str, command: str) -> int:
    """A guard's exit status; one that timed out decides nothing, so it is an error."""
    result = ctx.system.run(command, timeout=action.timeout, cwd=_cwd(ctx.system, action),
                            env=_guard_env(action), mutates=False)
    if result.timed_out:
        raise TimeoutError(f"{which} guard timed out after {action.timeout:g}s "
                           "(process group killed)")
    return result.returncode

