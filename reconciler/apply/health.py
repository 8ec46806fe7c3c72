"""Health checks after a run that changed something, and the revert when one fails.

Each `<health>` command runs on the node (as commands do: on the host, or under
another root only with host commands allowed) up to `retries` times, `interval`
apart, each attempt bounded by `timeout`. A check whose `after=` action is held this
run is not run (the change it would test did not happen). When a check fails, every
path the run changed is put back (apply/revert.py), the notifications the run fired
fire again so the services read the old files, and the checks run once more; the
report says `reverted`, with the check's output and what could not be undone
(packages, services, commands, accounts, mounts changed through commands).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.actions import notification
from reconciler.apply.revert import Journal, revert
from reconciler.compile.nodeconfig import CommandAction, HealthCheck, NodeConfig, ServiceAction
from reconciler.plan.change import ApplyContext
from reconciler.record.applied import AppliedState
from reconciler.record.report import EXIT_FAILED, HealthReport, RevertReport, RunReport
from reconciler.system.interface import System

OUTPUT_LIMIT = 2000  # characters of a check's output kept in the report
_REFIRE = {"notify-reload": "reload", "notify-restart": "restart", "notify-run": "run"}
_PATH_KINDS = frozenset({"file", "tree", "directory", "symlink"})
# Kinds that edit files (their records are keyed by action id): reverted with the files.
_FILE_EDITS = frozenset({"line", "block", "authorized-keys", "apt-source"})


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    attempts: int
    output: str = ""
    skipped: str | None = None  # why the check was not run


@dataclass
class HealthOutcome:
    """The checks after the run, and after a revert (if there was one)."""

    first: list[CheckResult]
    reverted: list[str] = field(default_factory=list)  # paths put back
    not_reverted: list[str] = field(default_factory=list)  # "package:nginx: install 1.22"
    refired: list[str] = field(default_factory=list)  # "service:nginx: reload"
    again: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.first if not r.passed and r.skipped is None]


def run_check(system: System, check: HealthCheck, sleep: Callable[[float], None],
              should_stop: Callable[[], bool]) -> CheckResult:
    """One check, retried: passed at the first attempt that exits 0."""
    output = ""
    attempt = 0
    for attempt in range(1, check.retries + 1):
        done = system.run(check.run, timeout=check.timeout, mutates=False)
        if done.returncode == 0 and not done.timed_out:
            return CheckResult(check.name, True, attempt)
        how = f"timed out after {check.timeout:g}s" if done.timed_out \
            else f"exited {done.returncode}"
        output = f"{how}: {(done.stdout + done.stderr).strip()[-OUTPUT_LIMIT:]}".rstrip(": ")
        if attempt < check.retries and not should_stop():
            sleep(check.interval)
        elif should_stop():
            break
    return CheckResult(check.name, False, attempt, output)


def run_checks(system: System, node: NodeConfig, report: RunReport,
               sleep: Callable[[float], None], should_stop: Callable[[], bool]) -> \
        list[CheckResult]:
    """Every health check of the node, in order, skipping those whose action is held."""
    held = {a.id for a in report.actions if a.status == "held"}
    results = []
    for check in node.health:
        waiting = [ref for ref in check.after if ref in held]
        if waiting:
            results.append(CheckResult(check.name, True, 0, skipped=f"not run: "
                                       f"{', '.join(waiting)} is held this run"))
        elif not system.runs_host_commands:
            results.append(CheckResult(check.name, True, 0, skipped="not run: commands "
                                       "under another root need --host-commands"))
        else:
            results.append(run_check(system, check, sleep, should_stop))
    return results


def after_run(journal: Journal, node: NodeConfig, report: RunReport, apply: ApplyContext,
              sleep: Callable[[float], None], should_stop: Callable[[], bool]) -> \
        HealthOutcome | None:
    """Check health after a run that applied something; revert the run's paths when a
    check fails. None: nothing was applied, or the node has no checks."""
    if not node.health or not report.counts.applied:
        return None
    outcome = HealthOutcome(run_checks(journal, node, report, sleep, should_stop))
    if not outcome.failed:
        return outcome
    outcome.reverted = revert(journal, journal.kept)
    for action in report.actions:
        for change in action.changes:
            if change.status != "applied":
                continue
            if change.op in _REFIRE:
                outcome.refired.append(_refire(node, action.id, change.op, apply))
            elif action.kind not in _PATH_KINDS:
                outcome.not_reverted.append(f"{action.id}: {change.summary}")
    outcome.again = run_checks(journal, node, report, sleep, should_stop)
    return outcome


def _refire(node: NodeConfig, action_id: str, op: str, apply: ApplyContext) -> str:
    """Fire a notification the run fired once more, now that the old files are back."""
    action = node.action(action_id)
    assert isinstance(action, ServiceAction | CommandAction), "only they are notified"
    verb = _REFIRE[op]
    change = notification(action, verb, f"{verb} after the revert", (), action.severity)
    try:
        change.apply(apply)
    except Exception as exc:  # the revert goes on: the report says what did not happen
        return f"{action_id}: {verb} failed: {exc}"
    return f"{action_id}: {verb}"


def settle(journal: Journal, node: NodeConfig, done: RunReport, applied: AppliedState,
           previous: AppliedState, apply: ApplyContext, should_stop: Callable[[], bool],
           sleep: Callable[[float], None] = time.sleep) -> tuple[RunReport, AppliedState]:
    """The run's report and last-applied state once its health is checked: unchanged
    when the checks pass, `reverted` (and the records of what was put back as they were
    before the run) when one fails."""
    outcome = after_run(journal, node, done, apply, sleep, should_stop)
    if outcome is None:
        return done, applied
    done = done.model_copy(update={"health": [_report(r) for r in outcome.first]})
    if not outcome.failed:
        return done, applied
    failed = outcome.failed[0]
    revert = RevertReport(paths=outcome.reverted, refired=outcome.refired,
                          not_reverted=outcome.not_reverted,
                          checks=[_report(r) for r in outcome.again])
    problems = [f"health check {failed.name} failed ({failed.attempts} attempt(s)): "
                f"{failed.output}",
                f"reverted {len(outcome.reverted)} path(s) this run changed"
                + (f"; not reverted: {'; '.join(outcome.not_reverted)}"
                   if outcome.not_reverted else "")]
    problems += [f"health check {r.name} still fails after the revert: {r.output}"
                 for r in outcome.again if not r.passed and r.skipped is None]
    done = done.model_copy(update={
        "result": "reverted", "exit_code": done.exit_code | EXIT_FAILED, "revert": revert,
        "problems": [*done.problems, *problems]})
    return done, _records_before(applied, previous, set(outcome.reverted))


def _report(result: CheckResult) -> HealthReport:
    return HealthReport(name=result.name, passed=result.passed, attempts=result.attempts,
                        output=result.output, skipped=result.skipped)


def _records_before(applied: AppliedState, previous: AppliedState,
                    reverted: set[str]) -> AppliedState:
    """The last-applied records with every reverted path, and every file edit keyed by
    its action (lines, blocks, keys, APT sources), as they were before the run."""
    records = dict(applied.paths)
    for key in set(records) | set(previous.paths):
        if key in reverted or key.split(":", 1)[0] in _FILE_EDITS:
            if key in previous.paths:
                records[key] = previous.paths[key]
            else:
                records.pop(key, None)
    return applied.model_copy(update={"paths": records})
