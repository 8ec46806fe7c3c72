"""Turn a run report into text for people: a summary table and coloured diffs."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from reconciler.record.report import ChangeReport, RunReport, diff_style, held_words

MAX_DIFFS = 20  # diffs printed without -v; a first apply would otherwise print every file

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
    """The lines of `text`, each broken at spaces (or mid-word if it must) to fit `width`."""
    pieces: list[Text] = []
    plain = text.plain
    start = 0
    for end in [*(i for i, char in enumerate(plain) if char == "\n"), len(plain)]:
        while end - start > width:
            cut = plain.rfind(" ", start + 1, start + width + 1)
            cut = cut if cut > start else start + width
            pieces.append(text[start:cut])
            start = cut + 1 if plain[cut] == " " else cut
        pieces.append(text[start:end])
        start = end + 1
    return pieces


def _table(rows: list[tuple[Text, str, str, Text]], width: int) -> Text:
    """Rows as aligned columns under a bold header, the last column folded to `width`.

    Laid out by hand: rich's Table measures every cell, which costs seconds for the
    thousand rows of a node's first apply.
    """
    header = ("status", "sev", "action", "what")
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    indent = sum(widths) + 2 * len(widths)
    room = max(width - indent, 20)
    text = Text()
    for column, title in enumerate(header):
        text.append(title.ljust(widths[column] + 2) if column < 3 else title, style="bold")
    for status, severity, action_id, what in rows:
        text.append("\n")
        text.append_text(status)
        text.append(" " * (widths[0] + 2 - len(status)))
        text.append(severity.ljust(widths[1] + 2))
        text.append(action_id.ljust(widths[2] + 2))
        for index, piece in enumerate(_folded(what, room)):
            if index:
                text.append("\n" + " " * indent)
            text.append_text(piece)
    text.append("\n")
    return text


def print_report(report: RunReport, console: Console, verbose: bool = False) -> None:
    """The header, one row per change (why it was held, skipped or failed below its
    summary), the diffs (the first MAX_DIFFS unless verbose), and a one-line tally.
    Lines naming paths are never wrapped."""
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
        _emit(console, _table(rows, console.width))
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
    tally = "nothing was changed" if report.result == "refused" else \
        f"{_counts(report)} in {report.duration_s:.2f}s"
    console.print(Text.assemble((report.result, "bold"), f" (exit {report.exit_code}): {tally}"),
                  soft_wrap=True)
