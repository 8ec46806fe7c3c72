"""What a history commit says about a run: its one-line summary, its trailers, and the
digest that tells whether a run is news at all.
"""

from __future__ import annotations

import hashlib
import json

from reconciler.record.report import RunReport
from reconciler.source.state import Refusal

_LISTED = 20  # paths named in a trailer before "(+N more)"


def outstanding_digest(report: RunReport) -> str:
    """A digest of what a run left outstanding, without timings: two runs with the same
    digest say the same. What a run applied is left out (a run that applied is always news)."""
    changes = [
        (a.id, c.op, c.path, c.status, c.drift, c.diff)  # summaries vary with parent dirs
        for a in report.actions for c in a.changes if c.status != "applied"
    ] + [(o.path, o.op, o.status) for o in report.orphans if o.status != "applied"]
    material = json.dumps([report.config_commit, report.result, report.problems, changes],
                          sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def summary(report: RunReport, refused_tip: Refusal | None) -> str:
    """`changed at abc123: subject (2 applied)`, or why the run was refused; one line."""
    c = report.counts
    commit = (report.config_commit or "none")[:12]
    title = f": {report.source.subject}" if report.source and report.source.subject else ""
    if report.result == "refused":
        first = report.problems[0] if report.problems else "refused"
        return _one_line(f"refused at {commit}: {first}")
    parts = [f"{report.result} at {commit}{title}"]
    # Counted like the trailers list them: paths (or action ids), each once; a hand edit
    # still standing is drift, not pending or held.
    drift = _involved(report, "pending", by_hand=True) | _involved(report, "held", by_hand=True)
    applied, pending, held, failed = (len(_involved(report, s) - drift)
                                      for s in ("applied", "pending", "held", "failed"))
    details = [f"{n} {w}" for n, w in ((applied, "applied"), (failed, "failed"),
                                        (len(drift), "drift"), (pending, "pending"),
                                        (held, "held"), (c.orphans, "orphans")) if n]
    if details:
        parts.append("(" + ", ".join(details) + ")")
    if refused_tip is not None:
        parts.append(f"; tip {refused_tip.commit[:12]} refused: {refused_tip.reason}")
    return _one_line(" ".join(parts))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def trailers(report: RunReport, refused_tip: Refusal | None) -> dict[str, str]:
    """The trailers that name the config commit, node, mode, result and the paths involved."""
    changed = sorted(_involved(report, "applied") | _involved(report, "pending"))
    held = sorted(_involved(report, "held"))
    failed = sorted(_involved(report, "failed"))
    signer = report.source.signed_by if report.source else None
    found = {
        "Config-Commit": report.config_commit or "none",
        "Config-Signed-By": signer or "unsigned",
        "Node": report.node,
        "Mode": report.mode,
        "Result": report.result,
        "Changed": _listing(changed),
        "Held": _listing(held),
        "Failed": _listing(failed),
        "States": states(report),
    }
    if refused_tip is not None:
        found["Refused-Tip"] = refused_tip.commit
    return found


def _involved(report: RunReport, status: str, by_hand: bool = False) -> set[str]:
    """The paths (or action ids) with a change in `status` (`by_hand`: a hand edit);
    failed: the failed actions."""
    if status == "failed":
        return {a.id for a in report.actions if a.status == "failed"}
    return {c.path or a.id for a in report.actions for c in a.changes
            if c.status == status and (not by_hand or c.drift != "pending")}


def states(report: RunReport) -> str:
    """What the run left standing, each state on its own: `drift=1 pending=0 held=17 failed=0`."""
    c = report.counts
    return f"drift={c.drift} pending={c.pending} held={c.held} failed={c.failed}"


def _listing(items: list[str]) -> str:
    if not items:
        return "0"
    shown = " ".join(items[:_LISTED])
    more = f" (+{len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return f"{len(items)}: {shown}{more}"
