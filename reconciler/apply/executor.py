"""Apply | report: carry out a plan in change mode, or only report it in audit mode.

Changes run in plan order. A held change is reported, not applied. A failed action
skips the actions that require it; independent actions go on. A notification fires
only if one of its sources really changed in this run. An action with checks has them
run once everything it checks is written (apply/checks.py): a failing check puts back
what this run changed for it, and what it would fire is not fired. A stop request is
honoured between changes (each file of a tree is one), in change and audit mode alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.actions.command import RunCommand
from reconciler.actions.files import UpdateFile
from reconciler.apply.checks import CheckOutcome, Guard, would_pass
from reconciler.apply.ledger import Ledger
from reconciler.plan.build import Plan
from reconciler.plan.change import ApplyContext, Change, Wrote
from reconciler.plan.probe import ActionPlan, Context, Progress
from reconciler.record.applied import AppliedState

INTERRUPTED = "run interrupted"


class Status(StrEnum):
    APPLIED = "applied"
    PENDING = "pending"  # audit mode: would be applied
    HELD = "held"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class ChangeOutcome:
    change: Change
    status: Status
    detail: str | None = None  # why held, skipped or failed


@dataclass
class ActionOutcome:
    plan: ActionPlan
    changes: list[ChangeOutcome] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(c.status is Status.FAILED for c in self.changes) \
            or any(c.status == "failed" for c in self.checks)

    @property
    def changed(self) -> bool:
        return any(c.status is Status.APPLIED for c in self.changes)


@dataclass
class Outcome:
    actions: list[ActionOutcome]
    orphans: list[ChangeOutcome]
    applied: AppliedState  # what the node has applied now: to be saved in change mode
    interrupted: bool = False


def execute(
    ctx: Context, plan: Plan, previous: AppliedState, change_mode: bool,
    should_stop: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Walk the plan; in change mode apply what may be applied and fold what each change
    did into the applied state, starting from `previous`."""
    ledger = Ledger(previous)
    walk = _Walk(ApplyContext(ctx.system, ctx.commit, ctx.read_repo, ledger.started,
                              ctx.digest), ledger, change_mode, Guard(plan.node), should_stop,
                 ctx.progress)
    outcomes: list[ActionOutcome] = []
    by_id: dict[str, ActionOutcome] = {}
    interrupted = plan.interrupted
    ctx.progress.start("applying" if change_mode else "auditing",
                       sum(len(a.changes) for a in plan.actions))
    if change_mode and not interrupted:
        # The files the plan replaces are backed up first, made durable all at once.
        replaced = [change.path for action_plan in plan.actions if action_plan.error is None
                    for change in action_plan.changes if isinstance(change, UpdateFile)
                    and change.held is None and not change.secret]
        if replaced:
            ctx.system.back_up_ahead(replaced)
    for action_plan in plan.actions:
        outcome = ActionOutcome(action_plan, error=action_plan.error)
        outcomes.append(outcome)
        by_id[action_plan.action.id] = outcome
        checks_after = walk.guard.checks_after(action_plan.action)
        # Whatever becomes of the action itself, what was written for it is checked.
        veto = walk.check(outcome, by_id) if not checks_after else None
        blocker = next((ref for ref in action_plan.action.requires
                        if ref in by_id and (by_id[ref].failed or by_id[ref].skipped)), None)
        if blocker is not None or outcome.error is not None or interrupted or should_stop():
            ctx.progress.advance(len(action_plan.changes))
        if blocker is not None:
            reason = "failed" if by_id[blocker].failed else "was skipped"
            outcome.skipped = f"requires {blocker} which {reason}"
            outcome.changes = [ChangeOutcome(c, Status.SKIPPED, outcome.skipped)
                               for c in action_plan.changes]
            continue
        if outcome.error is not None:
            continue
        if interrupted or should_stop():
            interrupted = True
            outcome.changes = [ChangeOutcome(c, Status.SKIPPED, INTERRUPTED)
                               for c in action_plan.changes]
            continue
        outcome.changes = walk.changes_of(action_plan, by_id, veto)
        interrupted = any(c.detail == INTERRUPTED for c in outcome.changes)
        if checks_after:  # an interrupted action's written files are checked too
            walk.check(outcome, by_id)
        if change_mode and not outcome.failed and not interrupted:
            ledger.keep(action_plan.in_sync)
    if change_mode and not interrupted:
        ledger.forget(plan.forget)
    orphans = [ChangeOutcome(change, Status.SKIPPED, INTERRUPTED) if interrupted
               else walk.one(change) for change in plan.orphans]
    return Outcome(outcomes, orphans, ledger.state(), interrupted)


@dataclass
class _Walk:
    """Applying changes one by one, each change's effect folded into the ledger."""

    ctx: ApplyContext
    ledger: Ledger
    change_mode: bool
    guard: Guard
    should_stop: Callable[[], bool]
    progress: Progress

    def check(self, outcome: ActionOutcome, by_id: dict[str, ActionOutcome]) -> str | None:
        """Run the action's checks if this run changed something they check; on failure
        mark the changes put back as failed and say why its notifications must not fire."""
        action = outcome.plan.action
        if not action.checks:
            return None
        if not self.change_mode:
            return self.audit(outcome, by_id)

        def applied(source: str) -> list[str]:
            found = by_id[source].changes if source in by_id else []
            return [c.change.path for c in found
                    if c.status is Status.APPLIED and c.change.path is not None]

        touched = self.guard.touched(action, applied)
        if not touched:
            return None
        outcome.checks = self.guard.run(self.ctx.system, self.ledger, action, touched)
        failed = next((c for c in outcome.checks if c.status == "failed"), None)
        if failed is None:
            return None
        why = f"put back: {action.id}'s check `{failed.check.run}` failed"
        for source in self.guard.sources(action):
            for change in by_id[source].changes if source in by_id else []:
                if change.status is Status.APPLIED and change.change.path in failed.restored:
                    change.status, change.detail = Status.FAILED, why
        return f"not fired: check `{failed.check.run}` failed"

    def audit(self, outcome: ActionOutcome, by_id: dict[str, ActionOutcome]) -> str | None:
        """Audit: would the pending changes of what the action checks pass its checks?"""
        action = outcome.plan.action
        pending = [c for source in sorted(self.guard.sources(action)) if source in by_id
                   for c in by_id[source].changes if c.status is Status.PENDING]
        if not pending:
            return None
        outcome.checks = would_pass(self.ctx.system, action,
                                    [c.change for c in pending])
        failed = next((c for c in outcome.checks if c.status == "would-fail"), None)
        if failed is None:
            return None
        for change in pending:
            change.detail = f"would fail {action.id}'s check `{failed.check.run}`"
        return f"would not fire: check `{failed.check.run}` would fail"

    def changes_of(self, plan: ActionPlan, by_id: dict[str, ActionOutcome],
                   veto: str | None = None) -> list[ChangeOutcome]:
        """One action's changes in order; the rest are skipped after one fails. With a
        `veto` (a failed check), what notifications ask of it is skipped."""
        results: list[ChangeOutcome] = []
        ran_command = False
        for position, change in enumerate(plan.changes):
            self.progress.advance()
            if position and self.should_stop():
                results += [ChangeOutcome(c, Status.SKIPPED, INTERRUPTED)
                            for c in plan.changes[position:]]
                break
            if change.notified_by and veto is not None:
                said = ChangeOutcome(change, Status.SKIPPED) if self.change_mode \
                    else self.one(change)
                said.detail = said.detail or veto
                results.append(said)
                continue
            if change.notified_by and self.change_mode and not any(
                by_id[src].changed for src in change.notified_by if src in by_id
            ):
                results.append(ChangeOutcome(change, Status.SKIPPED,
                                             "its sources did not change after all"))
                continue
            needless = change.needless(self.ctx) if self.change_mode and change.held is None \
                else None
            if needless is not None:
                results.append(ChangeOutcome(change, Status.SKIPPED, needless))
                continue
            if isinstance(change, RunCommand):
                if ran_command:
                    results.append(ChangeOutcome(change, Status.SKIPPED,
                                                 "already ran in this run"))
                    continue
                ran_command = self.change_mode and change.held is None
            result = self.one(change)
            results.append(result)
            if result.status is Status.FAILED:
                results += [ChangeOutcome(c, Status.SKIPPED,
                                          "an earlier change of this action failed")
                            for c in plan.changes[len(results):]]
                break
        return results

    def one(self, change: Change) -> ChangeOutcome:
        """Apply one change if it may be, and fold what it did."""
        if change.held is not None:
            return ChangeOutcome(change, Status.HELD, change.held)
        if not self.change_mode:
            return ChangeOutcome(change, Status.PENDING)
        try:
            self.guard.remember(self.ctx.system, self.ledger, change)
            effect = change.apply(self.ctx)
        except Exception as exc:  # one action's failure must not stop the run
            return ChangeOutcome(change, Status.FAILED, str(exc) or exc.__class__.__name__)
        self.ledger.fold(effect)
        return ChangeOutcome(change, Status.APPLIED,
                             effect.note if isinstance(effect, Wrote) else None)
