"""The fleet summary, node lists and one node's report as text for a terminal.

Everything a node reported is printed as plain text (click strips colours when the
output is not a terminal); nothing here interprets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import click

from reconciler.fleet.model import FleetReport
from reconciler.fleet.read import HistoryItem
from reconciler.fleet.summary import STATES, FleetStatus, NodeRow
from reconciler.timewords import ago as ago  # the fleet page's filter too

COLOURS = {"failed": "red", "reverted": "red", "refused": "red", "unreadable": "red",
           "interrupted": "yellow",
           "silent": "magenta", "held": "yellow", "drift": "yellow", "pending": "yellow",
           "changed": "cyan", "in-sync": "green"}
_SHOWN = 20


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "unknown"


def state(word: str) -> str:
    return click.style(word, fg=COLOURS.get(word))


def short(commit: str | None) -> str:
    return (commit or "none")[:12]


def status_lines(status: FleetStatus, sources: Sequence[str]) -> list[str]:
    """`reconciler fleet status`: counts, commits, the grid, then the exceptions."""
    lines = [f"fleet: {status.total} nodes reporting to {', '.join(sources)} "
             f"(at {when(status.now)} UTC)"]
    lines += [f"warning: {w}" for w in status.warnings]
    counts = [f"{status.by_state[s]} {state(s)}" for s in STATES if status.by_state.get(s)]
    lines.append("  " + ("  ".join(counts) or "no reports"))
    if status.by_state.get("silent"):
        lines[-1] += f"   (silent: no report for {ago(status.stale_after_s)})"
    newest = status.newest
    if newest is not None:
        share = 100 * newest.nodes // newest.total if newest.total else 0
        lines.append(f"newest config {short(newest.commit)} {newest.subject or ''} "
                     f"({when(newest.time)}): on {newest.nodes} of {newest.total} nodes "
                     f"({share}%)")
    lines.append("config commits")
    for group in status.commits[:_SHOWN]:
        lines.append(f"  {group.nodes:6}  {short(group.commit):12}  {when(group.time):16}  "
                     f"{group.subject or ''}".rstrip())
    if len(status.commits) > _SHOWN:
        lines.append(f"  ... and {len(status.commits) - _SHOWN} more commits")
    lines += _grid(status)
    if status.silent:
        lines.append(f"silent (no report for {ago(status.stale_after_s)})")
        lines += [f"  {r.node}  last report {ago(r.age_s)} ago: {r.result} at "
                  f"{short(r.commit)}" for r in status.silent[:_SHOWN]]
        lines += _more(status.silent)
    if status.refused:
        lines.append("refused config commits")
        for refused in status.refused[:_SHOWN]:
            lines.append(f"  {short(refused.commit)} {refused.subject or ''}: "
                         f"{len(refused.nodes)} node(s): {refused.reason or ''}")
    if status.rollout:
        lines.append("rollout (waiting for earlier waves, or halted)")
        lines += [f"  {r.node}  {r.rollout}" for r in status.rollout[:_SHOWN]]
        lines += _more(status.rollout)
    if status.pinned or status.behind:
        lines.append("pinned or behind their branch")
        lines += [f"  {r.node}  pinned to {short(r.commit)}" for r in status.pinned[:_SHOWN]]
        lines += [f"  {r.node}  {r.behind}" for r in status.behind[:_SHOWN]]
    if status.unreadable:
        lines.append("unreadable reports")
        lines += [f"  {r.node}  {r.problem}" for r in status.unreadable[:_SHOWN]]
    return lines


def _more(rows: Sequence[NodeRow]) -> list[str]:
    return [f"  ... and {len(rows) - _SHOWN} more"] if len(rows) > _SHOWN else []


def _grid(status: FleetStatus) -> list[str]:
    """Clusters down, classes across, each cell `worst-state count/nodes`."""
    if not status.grid:
        return []
    texts = {(c.cluster, c.cls): (f"{c.worst} {c.states[c.worst]}/{c.nodes}", c.worst)
             for c in status.grid}
    width = max(len(k) for k in status.classes) + 2
    width = max(width, *(len(t) + 2 for t, _ in texts.values()))
    first = max(len(c) for c in status.clusters) + 2
    lines = ["clusters by classes (worst state: nodes in it/all nodes)",
             "  " + " " * first + "".join(k.ljust(width) for k in status.classes).rstrip()]
    for cluster in status.clusters:
        line = "  " + cluster.ljust(first)
        for cls in status.classes:
            text, worst = texts.get((cluster, cls), ("-", ""))
            line += click.style(text, fg=COLOURS.get(worst)) + " " * (width - len(text))
        lines.append(line.rstrip())
    return lines


def node_lines(rows: Sequence[NodeRow]) -> list[str]:
    """`reconciler fleet nodes`: one node a line."""
    if not rows:
        return ["no nodes match"]
    width = max(len(r.node) for r in rows)
    return [f"{r.node.ljust(width)}  {state(r.state.ljust(11))}  {short(r.commit):12}  "
            f"{ago(r.age_s):>7} ago  held {r.held}, failed {r.failed}, drift {r.drift}"
            for r in rows]


def show_lines(node_row: NodeRow, report: FleetReport | None,
               history: Sequence[HistoryItem]) -> list[str]:
    """`reconciler fleet show NODE`: the last report, its diffs and the report history."""
    lines = [f"node        {node_row.node} ({node_row.cls}, {node_row.product}, "
             f"{node_row.cluster})", f"state       {state(node_row.state)}"]
    if report is None:
        return [*lines, f"problem     {node_row.problem}"]
    source = report.source
    lines += [
        f"last report {when(report.time)} UTC ({ago(node_row.age_s)} ago), {report.mode} mode,"
        f" {report.result} (exit {report.exit_code}), {report.duration_s:.2f}s,"
        f" reconciler {report.reconciler_version}",
        f"config      {short(report.config.commit)} {report.config.subject or ''}".rstrip(),
        f"tip seen    {short(source.tip.commit if source.tip else None)}"
        f" via {source.remote or 'unknown'}{' (mirror)' if source.mirror else ''}",
        "counts      " + ", ".join(f"{getattr(report.counts, k)} {k.replace('_', ' ')}" for k in
                                   ("in_sync", "applied", "pending", "edited_by_hand", "held",
                                    "failed", "skipped", "orphans")),
    ]
    if source.pinned:
        lines.append("PINNED      by an operator's rollback")
    if source.rollout:
        lines.append(f"ROLLOUT     {source.rollout}")
    if source.stale:
        lines.append(f"BEHIND      {source.stale}")
    if source.refused is not None:
        lines.append(f"REFUSED     {short(source.refused.commit)}: {source.refused_reason}")
    lines += [f"problem     {p}" for p in report.problems]
    if report.items:
        lines.append("changes")
        lines += [f"  {i.status:8} {i.severity:8} {i.action}: {i.summary}"
                  + (f" ({i.drift})" if i.drift and i.drift != "pending" else "")
                  + (f" — {i.reason}" if i.reason else "") for i in report.items]
        if report.items_omitted:
            lines.append(f"  ... and {report.items_omitted} more")
    lines += [f"  orphan   {o.severity:8} {o.path}: {o.summary}" for o in report.orphans]
    for diff in report.diffs:
        lines.append(f"diff of {diff.path or diff.action} ({diff.status})"
                     + (" (cut)" if diff.truncated else ""))
        lines += ["  " + line for line in diff.diff.splitlines()]
    if report.diffs_omitted:
        lines.append(f"... {report.diffs_omitted} more diffs not in the report")
    lines.append(f"history ({len(history)} reports)")
    lines += [f"  {when(h.time)}  {h.result:11}  {short(h.config_commit)}  {h.summary}"
              for h in history]
    return lines
