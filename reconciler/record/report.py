"""Run reports: a stable pydantic schema for machines (`--format json`), and text for people.

Secrets are redacted at construction: a secret file's change carries no diff, only
"content changed (secret)", so no later consumer can leak it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from reconciler.exitbits import EXIT_CHANGES as EXIT_CHANGES
from reconciler.exitbits import EXIT_FAILED as EXIT_FAILED
from reconciler.exitbits import EXIT_HELD as EXIT_HELD
from reconciler.exitbits import EXIT_IN_SYNC as EXIT_IN_SYNC
from reconciler.exitbits import EXIT_REFUSED as EXIT_REFUSED
from reconciler.exitbits import EXIT_SIGNAL as EXIT_SIGNAL
from reconciler.facts.model import Facts
from reconciler.record.counts import Counts as Counts
from reconciler.record.counts import Result as Result

if TYPE_CHECKING:
    from reconciler.apply.executor import ActionOutcome, ChangeOutcome, Outcome

SCHEMA_VERSION = 1


# The states a run can leave changes in, worst first: the worst one present is the run's
# result. A hand edit still standing (drift) is worse than a config change audit did not
# apply (pending), which is worse than one policy holds on purpose (held).
STANDING: tuple[Result, ...] = ("failed", "drift", "pending", "held")
HeldBy = Literal["ceiling", "local-edits", "root", "other"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChangeReport(Model):
    """One difference and what became of it."""

    op: str
    summary: str
    path: str | None = None
    status: Literal["applied", "pending", "held", "failed", "skipped"]
    severity: str
    drift: Literal["pending", "edited-by-hand", "both"]
    last_applied_commit: str | None = None
    detail: str | None = None  # why held, skipped or failed
    held_by: HeldBy | None = None  # which kind of reason holds it
    diff: str | None = None  # unified diff; never present for secrets
    notified_by: list[str] = []


class CheckReport(Model):
    """One `<check>` of an action, run because this run changed what it checks."""

    run: str
    origin: str
    status: Literal["passed", "failed", "would-fail", "not-run"]
    detail: str | None = None  # how it failed (with the checker's output), or why not run
    restored: list[str] = []  # the paths put back as they were before the run


class ActionReport(Model):
    id: str
    kind: str
    declared_in: str
    origin: str
    status: Literal["in-sync", "applied", "pending", "held", "failed", "skipped"]
    error: str | None = None
    notes: list[str] = []
    changes: list[ChangeReport] = []
    checks: list[CheckReport] = []


class SourceReport(Model):
    """Where the config came from (filled by `reconciler run`)."""

    commit: str | None = None
    subject: str | None = None
    branch: str | None = None
    tip: str | None = None
    signed_by: str | None = None
    remote: str | None = None
    failover: str | None = None  # why the remotes tried before `remote` failed (a mirror served)
    stale: str | None = None  # why the run used an older commit than the tip
    refused: str | None = None  # why the tip, or the remote, was refused (exit code bit 1)
    pinned: bool = False
    rollout: str | None = None  # waiting for (or halted at) an earlier wave of a rollout


class HealthReport(Model):
    """One health check after the run: passed, failed (its output), or not run (why)."""

    name: str
    passed: bool
    attempts: int
    output: str = ""
    skipped: str | None = None


class RevertReport(Model):
    """What a failed health check undid: the paths put back, the notifications fired
    again, what could not be undone, and the checks after the revert."""

    paths: list[str] = []
    refired: list[str] = []
    not_reverted: list[str] = []
    checks: list[HealthReport] = []


class RunReport(Model):
    """The whole account of one run; `schema_version` changes only on breaking changes."""

    schema_version: int = SCHEMA_VERSION
    node: str
    mode: Literal["audit", "change"]
    mode_from: str | None = None  # what decided the mode: the fleet's policy, agent.toml, a flag
    root: str
    config_commit: str | None
    ceiling: str
    started: datetime
    duration_s: float
    result: Result
    exit_code: int
    counts: Counts
    actions: list[ActionReport] = []
    orphans: list[ChangeReport] = []
    problems: list[str] = []  # why a run was refused
    notes: list[str] = []  # what the run did for itself: created the root, set a bad file aside
    source: SourceReport | None = None
    facts: Facts | None = None  # what the node is, as the run gathered it (to publish)
    health: list[HealthReport] = []  # the health checks after a run that changed something
    revert: RevertReport | None = None  # result "reverted": what a failed check undid


def _change(outcome: ChangeOutcome) -> ChangeReport:
    from reconciler.apply.executor import Status
    from reconciler.plan.change import held_kind

    change = outcome.change
    return ChangeReport(
        op=change.op, summary=change.summary, path=change.path, status=outcome.status.value,
        severity=str(change.severity), drift=change.drift.value,
        last_applied_commit=change.last_commit, detail=outcome.detail,
        held_by=held_kind(change.held) if outcome.status is Status.HELD else None,  # type: ignore[arg-type]
        diff=None if change.secret else change.diff, notified_by=list(change.notified_by))


def _action(outcome: ActionOutcome) -> ActionReport:
    from reconciler.apply.executor import Status

    action = outcome.plan.action
    changes = [_change(c) for c in outcome.changes]
    statuses = {c.status for c in outcome.changes}
    status: str
    failed_check = next((c for c in outcome.checks if c.status == "failed"), None)
    if outcome.error is not None or Status.FAILED in statuses or failed_check is not None:
        status = "failed"
    elif outcome.skipped is not None:
        status = "skipped"
    elif Status.APPLIED in statuses:
        status = "applied"
    elif Status.PENDING in statuses:
        status = "pending"
    elif Status.HELD in statuses:
        status = "held"
    else:
        status = "in-sync"
    return ActionReport(id=action.id, kind=action.kind, declared_in=action.declared_in,
                        origin=str(action.origin), status=status,  # type: ignore[arg-type]
                        error=outcome.error or outcome.skipped or
                        (failed_check.message if failed_check is not None else None),
                        notes=outcome.plan.notes, changes=changes,
                        checks=[CheckReport(run=c.check.run, origin=str(c.check.origin),
                                            status=c.status, detail=c.detail,
                                            restored=c.restored) for c in outcome.checks])


def build(
    node: str, mode: Literal["audit", "change"], root: str, commit: str | None, ceiling: str,
    started: datetime, duration: float, outcome: Outcome,
) -> RunReport:
    """Summarise an outcome: counts per path/change, the result word and the exit code."""
    # The engine's outcome types: reading and showing reports (status, check) loads none of it.
    from reconciler.apply.executor import Status
    from reconciler.plan.change import Drift

    actions = [_action(a) for a in outcome.actions]
    orphans = [_change(o) for o in outcome.orphans]
    counts = Counts(orphans=len(orphans))
    for item in outcome.actions:
        counts.in_sync += len(item.plan.in_sync)
        if not item.plan.changes and item.error is None and not item.plan.in_sync \
                and item.plan.action.kind not in ("file", "tree"):
            counts.in_sync += 1
        if item.error is not None:
            counts.failed += 1
    for change in [c for a in outcome.actions for c in a.changes] + outcome.orphans:
        by_hand = change.change.drift in (Drift.EDITED, Drift.BOTH)
        if change.status is Status.FAILED:
            counts.failed += 1
        elif change.status is Status.SKIPPED:
            counts.skipped += 1
        elif change.status is Status.APPLIED:
            counts.applied += 1
        elif by_hand:
            counts.drift += 1
        elif change.status is Status.HELD:
            counts.held += 1
        else:
            counts.pending += 1
        if by_hand and change.status in (Status.PENDING, Status.APPLIED, Status.HELD):
            counts.edited_by_hand += 1
    exit_code = EXIT_IN_SYNC
    if counts.applied or counts.pending or counts.drift:
        exit_code |= EXIT_CHANGES
    failed = counts.failed or any(a.skipped and "failed" in a.skipped for a in outcome.actions)
    if failed:
        exit_code |= EXIT_FAILED
    if counts.held:
        exit_code |= EXIT_HELD
    standing = {"failed": failed, "drift": counts.drift, "pending": counts.pending,
                "held": counts.held}
    result: Result = next((state for state in STANDING if standing[state]),
                          "changed" if counts.applied else "in-sync")
    if outcome.interrupted:
        result = "interrupted"
    return RunReport(node=node, mode=mode, root=root, config_commit=commit, ceiling=ceiling,
                     started=started, duration_s=round(duration, 4), result=result,
                     exit_code=exit_code, counts=counts, actions=actions, orphans=orphans)


def interrupted(report: RunReport, signum: int) -> RunReport:
    """`report` of a run stopped by signal `signum`: its exit code is 128 + the signal in
    the report, the process exit, last-run.json, `status` and the metric alike."""
    return report.model_copy(update={"result": "interrupted", "exit_code": EXIT_SIGNAL + signum})


def refused(
    node: str, mode: Literal["audit", "change"], root: str, commit: str | None, ceiling: str,
    started: datetime, duration: float, problems: list[str],
) -> RunReport:
    """A run that stopped before any change: bad config, unknown node, lock held."""
    return RunReport(node=node, mode=mode, root=root, config_commit=commit, ceiling=ceiling,
                     started=started, duration_s=round(duration, 4), result="refused",
                     exit_code=EXIT_REFUSED, counts=Counts(), problems=problems)


def held_reasons(report: RunReport) -> dict[str, int]:
    """How many held changes each kind of reason holds (hand edits are drift, not here)."""
    kinds: dict[str, int] = {}
    for change in [c for a in report.actions for c in a.changes] + report.orphans:
        if change.status == "held" and change.drift == "pending":
            kind = change.held_by or "other"
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def held_words(report: RunReport) -> str:
    """`17 held because --root is not /`, `3 held (2 above the ceiling reload, 1 …)`, or ""."""
    kinds = held_reasons(report)
    total = sum(kinds.values())
    words = {"root": "because --root is not /",
             "ceiling": f"above the ceiling {report.ceiling or '?'}",
             "other": "by policy or the node's state (see why)"}
    present = [kind for kind in words if kinds.get(kind)]
    if not present:
        return ""
    if len(present) == 1:
        return f"{total} held {words[present[0]]}"
    return f"{total} held (" + ", ".join(f"{kinds[k]} {words[k]}" for k in present) + ")"


def diff_style(line: str) -> str:
    """The rich style of one unified-diff line, shared by every coloured diff we print."""
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    return ""
