"""Turn a run report into text for people: a summary table and coloured diffs on a
terminal, one record per line anywhere else (a pipe, a file, CI logs, journald), which
is what grep and log collectors want. No path or file:line is ever broken in two."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from reconciler.record.repeat import Printed
from reconciler.record.report import ChangeReport, RunReport, diff_style, held_words

MAX_DIFFS = 20  # diffs printed without -v; a first apply would otherwise print every file
_NARROWEST = 30  # columns "what" needs beside the others; fewer, and it goes below them

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


def diff_text(diff: str) -> Text:
    text = Text()
    for line in diff.splitlines(keepends=True):
        text.append(line, style=diff_style(line))
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


def _counts(report: RunReport) -> str:
    """`35 in sync, 1 drift (edited by hand), 17 held only done with --root /`: each state
    on its own, and the hand edits this run overwrote said as such."""
    c = report.counts
    overwritten = c.edited_by_hand - c.drift
    words = [f"{c.in_sync} in sync"]
    words += [f"{n} {label}" for n, label in (
        (c.applied, "applied"), (overwritten, "hand edits overwritten"), (c.failed, "failed"),
        (c.drift, "drift (edited by hand)"), (c.pending, "pending")) if n > 0]
    words += [held_words(report)] if c.held else []
    words += [f"{n} {label}" for n, label in ((c.skipped, "skipped"), (c.orphans, "orphans"))
              if n]
    return ", ".join(words)


def _emit(console: Console, text: Text) -> None:
    """Print a block of lines as they are; without colours (a pipe, a file) rich would
    only spend time turning it into the same characters."""
    if console.color_system is None:
        console.file.write(text.plain)
    else:
        console.print(text, end="", soft_wrap=True)


def _folded(text: Text, width: int) -> list[Text]:
    """The lines of `text`, each broken at spaces to fit `width`; a word longer than that
    (a path) stays whole on a line of its own, longer than `width`."""
    pieces: list[Text] = []
    plain = text.plain
    start = 0
    for end in [*(i for i, char in enumerate(plain) if char == "\n"), len(plain)]:
        while end - start > width:
            cut = plain.rfind(" ", start + 1, start + width + 1)
            if cut <= start:
                cut = plain.find(" ", start + width + 1, end)
                if cut == -1:
                    break
            pieces.append(text[start:cut])
            start = cut + 1
        pieces.append(text[start:end])
        start = end + 1
    return pieces


def _records(rows: list[tuple[Text, str, str, Text]]) -> Text:
    """One line per row, `status severity action what; why`, for a pipe: no table to
    break, every fact about a change on the line that names it."""
    text = Text()
    for status, severity, action_id, what in rows:
        text.append_text(status)
        text.append(f" {severity or '-'} {action_id} ")
        text.append_text(Text("; ").join(what.split("\n")))
        text.append("\n")
    return text


def _table(rows: list[tuple[Text, str, str, Text]], width: int) -> Text:
    """Rows as aligned columns under a bold header, the last column folded at spaces to
    `width` (below each row, indented, when the other columns leave it too little room).

    Laid out by hand: rich's Table measures every cell, which costs seconds for the
    thousand rows of a node's first apply.
    """
    header = ("status", "sev", "action", "what")
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    indent = sum(widths) + 2 * len(widths)
    stacked = width - indent < _NARROWEST  # long action ids: "what" goes under each row
    if stacked:
        indent = 4
    room = width - indent
    text = Text()
    for column, title in enumerate(header):
        text.append(title.ljust(widths[column] + 2) if column < 3 else title, style="bold")
    for status, severity, action_id, what in rows:
        text.append("\n")
        text.append_text(status)
        text.append(" " * (widths[0] + 2 - len(status)))
        text.append(severity.ljust(widths[1] + 2))
        text.append(action_id if stacked else action_id.ljust(widths[2] + 2))
        for index, piece in enumerate(_folded(what, room)):
            if index or stacked:
                text.append("\n" + " " * indent)
            text.append_text(piece)
    text.append("\n")
    return text


def print_rows(console: Console, title: str, header: tuple[str, ...],
               rows: Sequence[tuple[str, ...]], whole: tuple[int, ...] = ()) -> None:
    """A titled table on a terminal wide enough for it, the columns in `whole` (names,
    paths, file:line) never folded. Anywhere else one record per line, `title: field
    field …`, so a grep finds a whole row; on a narrow terminal each record is folded at
    spaces only."""
    records = [f"{title}: " + "  ".join(f for f in (" ".join(v.split()) for v in row) if f)
               for row in rows]
    widths = [max([len(header[i]), *(len(row[i]) for row in rows)]) for i in range(len(header))]
    if not console.is_terminal or sum(widths) + 3 * len(widths) + 1 > console.width:
        room = console.width if console.is_terminal else None
        for record in records:
            lines = _folded(Text(record), room - 4) if room else [Text(record)]
            console.file.write("\n    ".join(line.plain for line in lines) + "\n")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, column in enumerate(header):
        table.add_column(column, overflow="fold", no_wrap=index in whole)
    for row in rows:
        table.add_row(*(escape(value) for value in row))
    console.print(table)


def print_report(report: RunReport, console: Console, verbose: bool = False) -> None:
    """The header, one row per change (why it was held, skipped or failed below its
    summary), the diffs (the first MAX_DIFFS unless verbose), and a one-line tally.
    Lines naming paths are never wrapped."""
    _print_body(report, console, verbose)
    words = "nothing was changed" if report.result == "refused" else \
        f"{_counts(report)} in {report.duration_s:.2f}s"
    console.print(Text.assemble((report.result, "bold"), f" (exit {report.exit_code}): {words}"),
                  soft_wrap=True)


def as_piped(report: RunReport) -> Printed:
    """What `print_report` prints on a pipe (not verbose), its last line without the
    run's duration: kept by an audit for the next that finds the same (record/repeat.py)."""
    piped = io.StringIO()
    _print_body(report, Console(file=piped, force_terminal=False, color_system=None,
                                highlight=False), False)
    return Printed(piped.getvalue(),
                   f"{report.result} (exit {report.exit_code}): {_counts(report)}")


def _print_body(report: RunReport, console: Console, verbose: bool) -> None:
    """Everything `print_report` prints but its last line."""
    # `run` always names a commit; without one it never got that far.
    fallback = "no commit" if report.source is not None else "working tree"
    commit = (report.config_commit or fallback)[:12]
    mode = "audit" if report.mode == "audit" else "apply"
    if report.mode_from:
        mode += f" (mode set by {report.mode_from})"
    ceiling = f", ceiling {report.ceiling}" if report.ceiling else ""
    console.print(Text.assemble((report.node, "bold"),
                                f" — {mode} at {commit}{ceiling}, root {report.root}"),
                  soft_wrap=True)
    if report.source is not None and report.source.stale:
        console.print(Text.assemble(("stale: ", "bold yellow"), report.source.stale),
                      soft_wrap=True)
    if report.source is not None and report.source.rollout:
        console.print(Text.assemble(("rollout: ", "bold cyan"), report.source.rollout),
                      soft_wrap=True)
    for problem in report.problems:
        console.print(Text(problem, style="red"), soft_wrap=True)
    rows: list[tuple[Text, str, str, Text]] = []
    diffs: list[ChangeReport] = []
    for action in report.actions:
        if action.status == "in-sync" and not verbose:
            continue
        style = _STATUS_STYLE.get(action.status, "")
        if not action.changes:
            what = Text(action.error or "; ".join(action.notes) or "in sync",
                        style="red" if action.error else "dim")
            rows.append((Text(action.status, style=style), "", action.id, what))
        for change in action.changes:
            path = change.path if change.path and change.path not in action.id else None
            rows.append((Text(change.status, style=_STATUS_STYLE.get(change.status, "")),
                         change.severity, action.id, _what(change, path)))
            if change.diff and change.status in ("applied", "pending", "held"):
                diffs.append(change)
        for check in action.checks:
            if check.status != "passed":
                rows.append((Text(check.status, style=_STATUS_STYLE.get("failed", "")
                                  if check.status == "failed" else "dim"), "", action.id,
                             Text(f"check `{check.run}` {check.status}: {check.detail}" +
                                  (f"; put back {', '.join(check.restored)}"
                                   if check.restored else ""))))
    for orphan in report.orphans:
        rows.append((Text(orphan.status, style=_STATUS_STYLE.get(orphan.status, "")), "",
                     f"orphan {orphan.path}", _what(orphan, None)))
    if rows:
        _emit(console, _table(rows, console.width) if console.is_terminal else _records(rows))
    shown = diffs if verbose else diffs[:MAX_DIFFS]
    if shown:
        text = Text()
        for change in shown:
            text.append_text(diff_text(change.diff or ""))
        _emit(console, text)
    if len(shown) < len(diffs):
        console.print(Text(f"({len(diffs) - len(shown)} more diffs not shown: -v shows them all, "
                           "so does --format json)", style="dim"), soft_wrap=True)
    for note in report.notes:
        console.print(Text.assemble(("note: ", "bold"), note), soft_wrap=True)
