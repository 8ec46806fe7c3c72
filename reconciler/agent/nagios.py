"""`reconciler check`: the Nagios/Icinga verdict on a node's last run, as pure logic.

OK when the last run left the node in sync and is fresh; WARNING for what it left
standing (drift: edited by hand; pending in audit mode; held), a late run or a stale
source; CRITICAL for failed actions, a refused commit or a run far too old; UNKNOWN
when there is no state to judge. One status line with performance data, and the exit
code Nagios expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from reconciler.errors import ReconcilerError
from reconciler.record import lastrun
from reconciler.record.report import RunReport, held_words
from reconciler.source.state import SourceState
from reconciler.statedir import StateDir

PREFIX = "RECONCILER"
DEFAULT_INTERVAL = 300


class Status(IntEnum):
    """Nagios plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Thresholds:
    """Ages in seconds: WARNING past `warn` (run or stale source), CRITICAL past `crit` (run)."""

    interval: float
    warn_intervals: float
    crit_intervals: float

    @property
    def warn(self) -> float:
        return self.interval * self.warn_intervals

    @property
    def crit(self) -> float:
        return self.interval * self.crit_intervals


@dataclass(frozen=True)
class Verdict:
    status: Status
    line: str


@dataclass(frozen=True)
class NodeState:
    """What `check` reads from the state directory; `problem` says why it is unusable."""

    last_run: RunReport | None
    source: SourceState | None
    problem: str | None = None


def read_state(state: StateDir) -> NodeState:
    """last-run.json and source-state.json; a missing or unreadable file is a problem, not
    an exception."""
    try:
        report = lastrun.last_run(state)
    except ReconcilerError as exc:
        return NodeState(None, None, "; ".join(p.message for p in exc.problems))
    if report is None:
        return NodeState(None, None, f"no last run under {state}")
    try:
        source: SourceState | None = SourceState.load(state.source_state)
    except ReconcilerError as exc:  # judge the run without it, and say so
        return NodeState(report, None, f"unreadable {state.source_state}: {exc}")
    return NodeState(report, source)


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def evaluate(state: NodeState, now: datetime, limits: Thresholds) -> Verdict:
    """The verdict and its status line
    (`RECONCILER OK - ... | drift=0 pending=0 held=0 failed=0 age=42s`)."""
    report = state.last_run
    if report is None:
        return Verdict(Status.UNKNOWN, f"{PREFIX} UNKNOWN - {state.problem or 'no state'}")
    age = max(0.0, (now - report.started).total_seconds() - report.duration_s)
    counts = report.counts
    drift, pending, held, failed = counts.drift, counts.pending, counts.held, counts.failed
    critical: list[str] = []
    warning: list[str] = []
    if report.result == "refused":
        critical.append("run refused: " + (report.problems[0] if report.problems else "no reason"))
    if report.result == "reverted":
        critical.append("reverted: " + (report.problems[0] if report.problems else "?"))
    if failed or report.result == "failed":
        failed_ids = [a.id for a in report.actions if a.status == "failed"]
        shown = ", ".join(failed_ids[:3]) + (" …" if len(failed_ids) > 3 else "")
        critical.append(f"{failed} failed" + (f" ({shown})" if shown else ""))
    source = state.source
    if source is not None and source.refused is not None:
        critical.append(f"commit {source.refused.commit[:12]} refused: {source.refused.reason}")
    elif report.source is not None and report.source.refused is not None:
        critical.append(f"source refused: {report.source.refused}")
    if age > limits.crit:
        critical.append(f"last run {_age(age)} ago (critical over {_age(limits.crit)})")
    elif age > limits.warn:
        warning.append(f"last run {_age(age)} ago (warning over {_age(limits.warn)})")
    if drift:
        warning.append(f"{drift} drift (edited by hand)")
    if pending:
        warning.append(f"{pending} pending")
    if held:
        warning.append(held_words(report))
    if report.result == "interrupted":
        warning.append("last run interrupted")
    stale = report.source.stale if report.source is not None else None
    if stale and not (report.source is not None and report.source.pinned):
        since = source.staleness(now) if source is not None else None
        stale_for = since.total_seconds() if since is not None else None
        if stale_for is None or stale_for > limits.warn:
            shown_age = f" for {_age(stale_for)}" if stale_for is not None else ""
            warning.append(f"source stale{shown_age}: {stale}")
    if report.source is not None and report.source.failover:
        warning.append(f"served by mirror {report.source.remote}: {report.source.failover}")
    if state.problem:
        warning.append(state.problem)
    perfdata = f"drift={drift} pending={pending} held={held} failed={failed} age={int(age)}s"
    commit = (report.config_commit or "none")[:12]
    if critical:
        status, reasons = Status.CRITICAL, critical + warning
    elif warning:
        status, reasons = Status.WARNING, warning
    else:
        status = Status.OK
        reasons = [f"{report.result} at {commit}, last run {_age(age)} ago"]
    text = "; ".join(r.replace("|", "/").replace("\n", " ") for r in reasons)
    return Verdict(status, f"{PREFIX} {status.name} - {text} | {perfdata}")
