"""Apply | report: carry out a plan in change mode, or only report it in audit mode.

Changes run in plan order. A held change is reported, not applied. A failed action
skips the actions that require it; independent actions go on. A notification fires
only if one of its sources really changed in this run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from reconciler.actions.command import RunCommand
from reconciler.apply.ledger import Ledger
from reconciler.plan.build import Plan
from reconciler.plan.change import ApplyContext, Change
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import AppliedState


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

    @property
    def failed(self) -> bool:
        return self.error is not None or any(c.status is Status.FAILED for c in self.changes)

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
                                  ctx.digest), ledger,
                 change_mode)
    outcomes: list[ActionOutcome] = []
    by_id: dict[str, ActionOutcome] = {}
    interrupted = False
    for action_plan in plan.actions:
        outcome = ActionOutcome(action_plan, error=action_plan.error)
        outcomes.append(outcome)
        by_id[action_plan.action.id] = outcome
        blocker = next((ref for ref in action_plan.action.requires
                        if ref in by_id and (by_id[ref].failed or by_id[ref].skipped)), None)
        if blocker is not None:
            reason = "failed" if by_id[blocker].failed else "was skipped"
            outcome.skipped = f"requires {blocker} which {reason}"
            outcome.changes = [ChangeOutcome(c, Status.SKIPPED, outcome.skipped)
                               for c in action_plan.changes]
            continue
        if outcome.error is not None:
            continue
        if interrupted or (change_mode and should_stop()):
            interrupted = True
            outcome.changes = [ChangeOutcome(c, Status.SKIPPED, "run interrupted")
                               for c in action_plan.changes]
            continue
        outcome.changes = walk.changes_of(action_plan, by_id)
        if change_mode and not outcome.failed:
            ledger.keep(action_plan.in_sync)
    if change_mode:
        ledger.forget(plan.forget)
    orphan_walk = replace(walk, change_mode=change_mode and not interrupted)
    orphans = [orphan_walk.one(change) for change in plan.orphans]
    return Outcome(outcomes, orphans, ledger.state(), interrupted)


@dataclass
class _Walk:
    """Applying changes one by one, each change's effect folded into the ledger."""

    ctx: ApplyContext
    ledger: Ledger
    change_mode: bool

    def changes_of(self, plan: ActionPlan, by_id: dict[str, ActionOutcome]) -> \
            list[ChangeOutcome]:
        """One action's changes in order; the rest are skipped after one fails."""
        results: list[ChangeOutcome] = []
        ran_command = False
        for change in plan.changes:
            if change.notified_by and self.change_mode and not any(
                by_id[src].changed for src in change.notified_by if src in by_id
            ):
                results.append(ChangeOutcome(change, Status.SKIPPED,
                                             "its sources did not change after all"))
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
            effect = change.apply(self.ctx)
        except Exception as exc:  # one action's failure must not stop the run
            return ChangeOutcome(change, Status.FAILED, str(exc) or exc.__class__.__name__)
        self.ledger.fold(effect)
        return ChangeOutcome(change, Status.APPLIED)
