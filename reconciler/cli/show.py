"""Turn a run report into text for people: a summary table and coloured diffs on a
terminal, one record per line anywhere else (a pipe, a file, CI logs, journald), which
is what grep and log collectors want. No path or file:line is ever broken in two.

A report is laid out once, as lines of styled pieces; a terminal gets them through rich,
anywhere else they are joined as rich would join them without colours (control codes
dropped, tabs of printed lines expanded), and rich (50 ms of imports) is not loaded.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.record.repeat import Printed, timed
from reconciler.record.report import ChangeReport, RunReport, diff_style, held_words
from reconciler.terminal import could_be_terminal

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

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
_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))  # what rich drops from any text it is given

Span = tuple[str, str]  # a piece of text and its rich style ("": none)
Line = tuple[Span, ...]


@dataclass(frozen=True)
class _Row:
    """One change (or action, check, orphan): `what` may hold a second line, why it was
    not done."""

    status: Span
    severity: str
    action: str
    what: Line


@dataclass(frozen=True)
class _Layout:
    """A report laid out: the lines above the rows, the rows, the diffs shown, the lines
    below them, and the tally."""

    head: list[Line]
    rows: list[_Row]
    diffs: list[str]
    tail: list[Line]
    tally: Line


def print_report(report: RunReport, verbose: bool = False) -> None:
    """The header, one row per change (why it was held, skipped or failed below its
    summary), the diffs (the first MAX_DIFFS unless verbose), and a one-line tally, on
    stdout. Lines naming paths are never wrapped."""
    layout = _layout(report, verbose)
    if could_be_terminal(sys.stdout):
        from rich.console import Console

        console = Console(highlight=False)
        if console.is_terminal:
            _print_on_terminal(layout, console)
            return
    sys.stdout.write(_plain(layout) + _printed(layout.tally))


def as_piped(report: RunReport) -> Printed:
    """What `print_report` prints on a pipe (not verbose), its last line without the
    run's duration: kept by an audit for the next that finds the same (record/repeat.py)."""
    return Printed(_plain(_layout(report, False)),
                   f"{report.result} (exit {report.exit_code}): {_counts(report)}")


def _layout(report: RunReport, verbose: bool) -> _Layout:
    # `run` always names a commit; without one it never got that far.
    fallback = "no commit" if report.source is not None else "working tree"
    commit = (report.config_commit or fallback)[:12]
    mode = "audit" if report.mode == "audit" else "apply"
    if report.mode_from:
        mode += f" (mode set by {report.mode_from})"
    ceiling = f", ceiling {report.ceiling}" if report.ceiling else ""
    head: list[Line] = [((report.node, "bold"),
                         (f" — {mode} at {commit}{ceiling}, root {report.root}", ""))]
    if report.source is not None and report.source.stale:
        head.append((("stale: ", "bold yellow"), (report.source.stale, "")))
    if report.source is not None and report.source.rollout:
        head.append((("rollout: ", "bold cyan"), (report.source.rollout, "")))
    head += [((problem, "red"),) for problem in report.problems]
    rows: list[_Row] = []
    diffs: list[str] = []
    for action in report.actions:
        if action.status == "in-sync" and not verbose:
            continue
        if not action.changes:
            what = (action.error or "; ".join(action.notes) or "in sync",
                    "red" if action.error else "dim")
            rows.append(_Row((action.status, _STATUS_STYLE.get(action.status, "")), "",
                             action.id, (what,)))
        for change in action.changes:
            path = change.path if change.path and change.path not in action.id else None
            rows.append(_Row((change.status, _STATUS_STYLE.get(change.status, "")),
                             change.severity, action.id, _what(change, path)))
            if change.diff and change.status in ("applied", "pending", "held"):
                diffs.append(change.diff)
        for check in action.checks:
            if check.status != "passed":
                put_back = f"; put back {', '.join(check.restored)}" if check.restored else ""
                rows.append(_Row(
                    (check.status, _STATUS_STYLE["failed"] if check.status == "failed" else "dim"),
                    "", action.id,
                    ((f"check `{check.run}` {check.status}: {check.detail}{put_back}", ""),)))
    for orphan in report.orphans:
        rows.append(_Row((orphan.status, _STATUS_STYLE.get(orphan.status, "")), "",
                         f"orphan {orphan.path}", _what(orphan, None)))
    shown = diffs if verbose else diffs[:MAX_DIFFS]
    tail: list[Line] = []
    if len(shown) < len(diffs):
        tail.append(((f"({len(diffs) - len(shown)} more diffs not shown: -v shows them all, "
                      "so does --format json)", "dim"),))
    tail += [(("note: ", "bold"), (note, "")) for note in report.notes]
    words = "nothing was changed" if report.result == "refused" else \
        timed(_counts(report), report.duration_s)
    tally = ((report.result, "bold"), (f" (exit {report.exit_code}): {words}", ""))
    return _Layout(head, rows, shown, tail, tally)


def drift_words(change: ChangeReport) -> str | None:
    """"edited by hand since reconciler wrote it at abc123", or None for a plain change."""
    words = _DRIFT_WORDS.get(change.drift)
    if words is None:
        return None
    commit = change.last_applied_commit
    return f"{words} since reconciler wrote it" + (f" at {commit[:12]}" if commit else "")


def _what(change: ChangeReport, path: str | None) -> Line:
    """The summary, where the change is, its drift, and (on its own line) why it was not done."""
    what: list[Span] = [(f"{path}: {change.summary}" if path else change.summary, "")]
    drift = drift_words(change)
    if drift:
        what.append((f" [{drift}]", "bold yellow"))
    if change.detail:
        what.append((f"\n{change.status}: {change.detail}",
                     _DETAIL_STYLE.get(change.status, "dim")))
    return tuple(what)


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


def _plain(layout: _Layout) -> str:
    """Everything but the tally as rich prints it without colours or a terminal."""
    out = io.StringIO()
    for line in layout.head:
        out.write(_printed(line))
    for row in layout.rows:
        # One line per row, `status severity action what; why`: no table to break, every
        # fact about a change on the line that names it.
        what = "; ".join(_lines(_joined(row.what).translate(_CONTROL)))
        out.write(f"{row.status[0]} {row.severity or '-'} {row.action} {what}\n"
                  .translate(_CONTROL))
    out.write("".join(layout.diffs).translate(_CONTROL))
    for line in layout.tail:
        out.write(_printed(line))
    return out.getvalue()


def _joined(line: Line) -> str:
    return "".join(text for text, _ in line)


def _printed(line: Line) -> str:
    """A line as rich's `print` writes it to a file: control codes dropped, tabs expanded
    (counting characters, where rich counts a wide character as two columns)."""
    return _joined(line).translate(_CONTROL).expandtabs(8) + "\n"


def _lines(text: str) -> list[str]:
    """`text`'s lines as rich's `Text.split` gives them: a last empty one dropped."""
    lines = text.split("\n")
    return lines[:-1] if len(lines) > 1 and not lines[-1] else lines


def _print_on_terminal(layout: _Layout, console: Console) -> None:
    from rich.text import Text

    for line in layout.head:
        console.print(Text.assemble(*line), soft_wrap=True)
    rows = [(Text(row.status[0], style=row.status[1]), row.severity, row.action,
             Text.assemble(*row.what)) for row in layout.rows]
    if rows:
        _emit(console, _table(rows, console.width))
    if layout.diffs:
        text = Text()
        for diff in layout.diffs:
            for diff_line in diff.splitlines(keepends=True):
                text.append(diff_line, style=diff_style(diff_line))
        _emit(console, text)
    for line in [*layout.tail, layout.tally]:
        console.print(Text.assemble(*line), soft_wrap=True)


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


def _table(rows: list[tuple[Text, str, str, Text]], width: int) -> Text:
    """Rows as aligned columns under a bold header, the last column folded at spaces to
    `width` (below each row, indented, when the other columns leave it too little room).

    Laid out by hand: rich's Table measures every cell, which costs seconds for the
    thousand rows of a node's first apply.
    """
    from rich.text import Text

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
    from rich.text import Text

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
