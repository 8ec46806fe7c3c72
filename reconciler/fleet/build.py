"""Turn a run's `RunReport` into the `report.json` a node publishes, and tell news apart.

Pure functions: the caller gathers what the run report lacks (the refused tip, commit
times) and passes it in. Everything is copied from the run report, which holds no
secret by construction (a secret file's change carries no diff); texts are cut to
bounded lengths and the remote's password, if any, is hidden.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from reconciler import __version__
from reconciler.fleet.model import (
    MAX_DIFF_BYTES,
    MAX_DIFFS_BYTES,
    MAX_ITEMS,
    MAX_PROBLEMS,
    MAX_TEXT,
    ConfigRef,
    Diff,
    FleetReport,
    Item,
    ReportCounts,
    SourceInfo,
)
from reconciler.record.report import ChangeReport, RunReport
from reconciler.source.cache import redact

# Items the reader needs first when a report has more than MAX_ITEMS.
_ORDER = {"failed": 0, "held": 1, "skipped": 2, "pending": 3, "applied": 4}


@dataclass(frozen=True)
class Context:
    """What a run report does not say and a fleet reader wants: commit subjects and
    times, the refused tip and its reason, and which URL is the configured remote."""

    remote: str | None = None
    commits: dict[str, tuple[datetime | None, str | None]] | None = None  # sha: time, subject
    refused_commit: str | None = None
    refused_reason: str | None = None
    good_since: tuple[str, datetime] | None = None  # the last good commit, first worked at


def _cut(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _ref(commit: str | None, ctx: Context, subject: str | None = None) -> ConfigRef | None:
    if commit is None:
        return None
    time, known = (ctx.commits or {}).get(commit, (None, None))
    return ConfigRef(commit=commit, subject=_cut(subject or known, 300), time=time)


def _item(action: str, change: ChangeReport) -> Item:
    return Item(action=action, status=change.status, severity=change.severity,
                summary=_cut(change.summary) or "", path=change.path, drift=change.drift,
                reason=_cut(change.detail))


def _items(report: RunReport) -> list[Item]:
    found: list[Item] = []
    for action in report.actions:
        found.extend(_item(action.id, change) for change in action.changes)
        if action.status == "failed" and not any(c.status == "failed" for c in action.changes):
            found.append(Item(action=action.id, status="failed", severity="none",
                              summary="failed", reason=_cut(action.error)))
        elif action.status == "skipped" and not action.changes:
            found.append(Item(action=action.id, status="skipped", severity="none",
                              summary="skipped", reason=_cut(action.error)))
    return sorted(found, key=lambda item: _ORDER[item.status])


def _diffs(report: RunReport) -> tuple[list[Diff], int]:
    """Diffs of non-secret files, outstanding ones first, within MAX_DIFFS_BYTES."""
    candidates = sorted(
        ((a.id, c) for a in report.actions for c in a.changes if c.diff),
        key=lambda pair: _ORDER[pair[1].status],
    )
    kept: list[Diff] = []
    budget = MAX_DIFFS_BYTES
    for action, change in candidates:
        text = change.diff or ""
        raw = text.encode()
        truncated = len(raw) > MAX_DIFF_BYTES
        if truncated:
            text = raw[:MAX_DIFF_BYTES].decode("utf-8", "ignore")
        if len(text.encode()) > budget:
            break
        budget -= len(text.encode())
        kept.append(Diff(action=action, path=change.path, status=change.status, diff=text,
                         truncated=truncated))
    return kept, len(candidates) - len(kept)


def build(report: RunReport, ctx: Context, partial: bool = False,
          heartbeat: bool = False) -> FleetReport:
    """The report a node publishes for `report`."""
    source = report.source
    items = _items(report)
    diffs, diffs_omitted = _diffs(report)
    commit = report.config_commit
    refused = _ref(ctx.refused_commit, ctx)
    served = source.remote if source is not None else None
    return FleetReport(
        node=report.node, time=report.started, duration_s=report.duration_s, mode=report.mode,
        result=report.result, exit_code=report.exit_code, ceiling=report.ceiling,
        partial=partial, heartbeat=heartbeat, reconciler_version=__version__,
        config=_ref(commit, ctx, source.subject if source else None) or ConfigRef(),
        config_since=ctx.good_since[1] if ctx.good_since and ctx.good_since[0] == commit
        else None,
        source=SourceInfo(
            branch=source.branch if source else None,
            tip=_ref(source.tip, ctx) if source else None,
            remote=redact(served) if served else None,
            mirror=served is not None and ctx.remote is not None and served != ctx.remote,
            signed_by=_cut(source.signed_by, 300) if source else None,
            stale=_cut(source.stale) if source else None,
            pinned=source.pinned if source else False,
            refused=refused,
            refused_reason=_cut(ctx.refused_reason) if refused else None,
            rollout=_cut(source.rollout) if source else None,
        ),
        counts=ReportCounts.model_validate(report.counts.model_dump()),
        items=items[:MAX_ITEMS], items_omitted=max(0, len(items) - MAX_ITEMS),
        orphans=[_item("orphan", o) for o in report.orphans[:MAX_ITEMS]],
        diffs=diffs, diffs_omitted=diffs_omitted,
        problems=[_cut(p) or "" for p in report.problems[:MAX_PROBLEMS]],
    )  # fmt: skip


def fingerprint(doc: FleetReport) -> str:
    """What a report says, without when or how long: two reports with the same
    fingerprint tell the fleet nothing new. The stale text carries ages that grow every
    run, so only whether the node is behind counts."""
    data = doc.model_dump(mode="json", exclude={"time", "duration_s", "heartbeat"})
    data["source"]["stale"] = doc.source.stale is not None
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def commit_message(doc: FleetReport) -> str:
    """The report commit's message: a summary line and trailers, so `git log` of a node's
    report ref reads as its history without opening any report."""
    commit = (doc.config.commit or "none")[:12]
    title = f": {doc.config.subject}" if doc.config.subject else ""
    kind = " (heartbeat)" if doc.heartbeat else ""
    summary = " ".join(f"{doc.result} at {commit}{title}{kind}".split())[:200]
    c = doc.counts
    trailers = {
        "Node": doc.node,
        "Result": doc.result,
        "Config-Commit": doc.config.commit or "none",
        "Report-Time": doc.time.isoformat(),
        "Counts": f"{c.applied} applied, {c.pending} pending, {c.edited_by_hand} edited by "
                  f"hand, {c.held} held, {c.failed} failed, {c.orphans} orphans",
    }
    return summary + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
