"""Turn a run report into text for people: a summary table and coloured diffs."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.report import ChangeReport, Counts, RunReport

_STATUS_STYLE = {
    "applied": "green",
    "pending": "yellow",
    "held": "magenta",
    "failed": "bold red",
    "skipped": "red",
    "in-sync": "dim",
}
_DETAIL_STYLE = {"held": "magenta", "failed": "red", "skipped": "red"}
_DRIFT_WORDS = {"edited-by-hand": "edited by hand", "both": "edited by hand and changed in config"}
_COUNT_WORDS = (
    ("applied", "applied"),
    ("pending", "pending"),
    ("edited_by_hand", "edited by hand"),
    ("held", "held"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("orphans", "orphans"),
)


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


def drift_words(change: ChangeReport) -> str | None:
    """"edited by hand since reconciler wrote it at abc123", or None for a plain change."""
    words = _DRIFT_WORDS.get(change.drift)
    if words is None:
        return None
    commit = change.last_applied_commit
    return f"{words} since reconciler wrote it" + (f" at {commit[:12]}" if commit else "")


def _what(change: ChangeReport, path: str | None) -> Text:
    """The summary, where the change is, its drift, and (on its own line) why it was not done."""
    text = Text(f"{path}: " if path else "")
    text.append(change.summary)
    drift = drift_words(change)
    if drift:
        text.append(f" [{drift}]", style="bold yellow")
    if change.detail:
        text.append(f"\n{change.status}: {change.detail}",
                    style=_DETAIL_STYLE.get(change.status, "dim"))
    return text


def _counts(counts: Counts) -> str:
    words = [f"{counts.in_sync} in sync"]
    words += [f"{getattr(counts, name)} {label}" for name, label in _COUNT_WORDS
              if getattr(counts, name)]
    return ", ".join(words)


def print_report(report: RunReport, console: Console, verbose: bool = False) -> None:
    """The header, one table row per change (why it was held, skipped or failed below its
    summary), the diffs, and a one-line tally. Lines naming paths are never wrapped."""
    commit = (report.config_commit or "working tree")[:12]
    mode = "audit" if report.mode == "audit" else "apply"
    ceiling = f", ceiling {report.ceiling}" if report.ceiling else ""
    console.print(Text.assemble((report.node, "bold"),
                                f" — {mode} at {commit}{ceiling}, root {report.root}"),
                  soft_wrap=True)
    if report.source is not None and report.source.stale:
        console.print(Text.assemble(("stale: ", "bold yellow"), report.source.stale),
                      soft_wrap=True)
    for problem in report.problems:
        console.print(Text(problem, style="red"), soft_wrap=True)
    table = Table(show_edge=False, box=None, pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("action", overflow="fold")
    table.add_column("what", overflow="fold", ratio=1)
    diffs: list[ChangeReport] = []
    for action in report.actions:
        if action.status == "in-sync" and not verbose:
            continue
        style = _STATUS_STYLE.get(action.status, "")
        if not action.changes:
            what = Text(action.error or "; ".join(action.notes) or "in sync",
                        style="red" if action.error else "dim")
            table.add_row(Text(action.status, style=style), "", Text(action.id), what)
        for change in action.changes:
            path = change.path if change.path and change.path not in action.id else None
            table.add_row(Text(change.status, style=_STATUS_STYLE.get(change.status, "")),
                          change.severity, Text(action.id), _what(change, path))
            if change.diff and change.status in ("applied", "pending", "held"):
                diffs.append(change)
    for orphan in report.orphans:
        table.add_row(Text(orphan.status, style=_STATUS_STYLE.get(orphan.status, "")), "",
                      Text(f"orphan {orphan.path}"), _what(orphan, None))
    if table.row_count:
        console.print(table)
    for change in diffs:
        console.print(diff_text(change.diff or ""), end="")
    tally = "nothing was changed" if report.result == "refused" else \
        f"{_counts(report.counts)} in {report.duration_s:.2f}s"
    console.print(Text.assemble((report.result, "bold"), f" (exit {report.exit_code}): {tally}"),
                  soft_wrap=True)
