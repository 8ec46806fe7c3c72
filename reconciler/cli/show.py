"""Turn a run report into text for people: a summary table and coloured diffs."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.report import ActionReport, ChangeReport, RunReport

_STATUS_STYLE = {
    "applied": "green",
    "pending": "yellow",
    "held": "magenta",
    "failed": "bold red",
    "skipped": "red",
    "in-sync": "dim",
}
_DRIFT_WORDS = {"edited-by-hand": "edited by hand", "both": "edited by hand and changed in config"}


def diff_text(diff: str) -> Text:
    text = Text()
    for line in diff.splitlines(keepends=True):
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append(line, style=style)
    return text


def _change_line(change: ChangeReport) -> str:
    words = [change.summary]
    if change.drift in _DRIFT_WORDS:
        since = f" since reconciler wrote it at {change.last_applied_commit[:12]}" \
            if change.last_applied_commit else ""
        words.append(f"[{_DRIFT_WORDS[change.drift]}{since}]")
    if change.detail:
        words.append(f"({change.detail})")
    return " ".join(words)


def print_report(report: RunReport, console: Console, verbose: bool = False) -> None:
    commit = (report.config_commit or "working tree")[:12]
    console.print(f"[bold]{report.node}[/] — {report.mode} mode at {commit}, "
                  f"ceiling {report.ceiling}, root {report.root}")
    if report.source is not None and report.source.stale:
        console.print(f"[bold yellow]stale:[/] {report.source.stale}")
    if report.problems:
        for problem in report.problems:
            console.print(Text(problem, style="red"))
    table = Table(show_edge=False, box=None, pad_edge=False)
    table.add_column("status")
    table.add_column("sev")
    table.add_column("action")
    table.add_column("what", overflow="fold")
    shown: list[tuple[ActionReport | None, ChangeReport]] = []
    for action in report.actions:
        if action.status == "in-sync" and not verbose:
            continue
        if not action.changes:
            table.add_row(Text(action.status, style=_STATUS_STYLE.get(action.status, "")), "",
                          Text(action.id), Text(action.error or "; ".join(action.notes)))
        for change in action.changes:
            what = _change_line(change)
            if change.path and change.path not in action.id:
                what = f"{change.path}: {what}"
            table.add_row(Text(change.status, style=_STATUS_STYLE.get(change.status, "")),
                          change.severity, Text(action.id), Text(what))
            shown.append((action, change))
    for orphan in report.orphans:
        table.add_row(Text(orphan.status, style=_STATUS_STYLE.get(orphan.status, "")), "",
                      Text(f"orphan {orphan.path}"), Text(_change_line(orphan)))
    if table.row_count:
        console.print(table)
    for _, change in shown:
        if change.diff and change.status in ("applied", "pending", "held"):
            console.print(diff_text(change.diff), end="")
    c = report.counts
    console.print(f"[bold]{report.result}[/] (exit {report.exit_code}): {c.in_sync} in sync, "
                  f"{c.applied} applied, {c.pending} pending, {c.edited_by_hand} edited by hand, "
                  f"{c.held} held, {c.failed} failed, {c.skipped} skipped, {c.orphans} orphans "
                  f"in {report.duration_s:.2f}s")
