"""The fleet plan for a terminal: rich `Text` lines, or plain text without colour."""

from __future__ import annotations

from typing import Any

from reconciler.record.report import diff_style
from reconciler.review.model import AttrChange, Group, NodeDiff, PlanReport
from reconciler.review.names import compress_names, plural


def short_commit(commit: str | None) -> str:
    """` (abc123def456)` after a revision, or nothing when it has no commit."""
    return f" ({commit[:12]})" if commit else ""


def _table(report: PlanReport) -> list[tuple[str, str, str]]:
    """Rows of the summary table: (label, changed, total); headers have empty totals."""
    rows: list[tuple[str, str, str]] = [("class", "changed", "total")]
    rows += [(c.name, str(c.changed), str(c.total)) for c in report.by_class]
    rows.append(("cluster", "changed", "total"))
    rows += [(c.name, str(c.changed), str(c.total)) for c in report.by_cluster]
    if report.by_severity:
        rows.append(("severity", "nodes", ""))
        rows += [(word, str(count), "") for word, count in report.by_severity.items()]
    return rows


def _attr_text(attrs: tuple[AttrChange, ...], added: bool) -> str:
    if added:
        return ", ".join(f"{a.name} {a.new}" for a in attrs if a.name != "severity")
    return ", ".join(f"{a.name} {a.old or 'unset'} → {a.new or 'unset'}" for a in attrs)


_MARKS = {"changed": "~", "new": "+", "unmanaged": "-", "added": "+", "removed": "-"}


def change_lines(diff: NodeDiff) -> list[tuple[str, str, str | None]]:
    """One group's changes as (mark, text, unified diff or None); the mark is +, -, ~ or !."""
    lines: list[tuple[str, str, str | None]] = []
    for problem in diff.base_problems:
        lines.append(("!", f"base revision: {problem}", None))
    for change in diff.files:
        what = {"changed": "file", "new": "new file", "unmanaged": "file"}[change.status]
        text = f"{what} {change.path} ({change.severity})"
        if change.note:
            text += f": {change.note}"
        lines.append((_MARKS[change.status], text, change.diff))
    for action in diff.actions:
        text = f"{action.action} ({action.severity})"
        if action.status == "removed":
            text += ": no longer managed (left as it is on the node)"
        elif _attr_text(action.attributes, action.status == "added"):
            text += ": " + _attr_text(action.attributes, action.status == "added")
        lines.append((_MARKS[action.status], text, None))
    return lines


def text_lines(report: PlanReport) -> list[Any]:
    """The plan for a terminal, as rich `Text` lines (print `.plain` for no colour)."""
    from rich.text import Text

    severity_style = {"none": "green", "reload": "yellow", "restart": "bold red",
                      "reboot": "bold magenta"}
    out: list[Any] = [Text(f"plan {report.base}{short_commit(report.base_commit)} → "
                           f"{report.head}{short_commit(report.head_commit)}", style="dim")]
    if not report.valid:
        out.append(Text(report.headline + " (its errors are on stderr)", style="bold red"))
        return out
    out.append(Text(report.headline, style=f"bold {severity_style[report.severity]}"
                    if report.changed_nodes else "bold green"))
    for problem in report.base_problems:
        out.append(Text(f"  base: {problem}", style="red"))
    if report.groups or report.added_nodes or report.removed_nodes:
        out.append(Text(""))
        for label, changed, total in _table(report):
            header = total in ("total", "") and changed in ("changed", "nodes")
            out.append(Text(f"  {label:<12} {changed:>7} {total:>6}".rstrip(),
                            style="bold" if header else ""))
    for label, nodes in (("added", report.added_nodes), ("removed", report.removed_nodes)):
        if nodes:
            out.append(Text(f"nodes {label}: {plural(len(nodes), 'node')}: "
                            + " ".join(compress_names(nodes)),
                            style="green" if label == "added" else "red"))
    for change in report.secrets:
        out.append(Text(f"secret {change.variable} ({change.path}): {change.change}",
                        style="yellow"))
    hint = node_hint(report)
    if hint:
        out += [Text(""), Text(f"{NODE_HINT}: {hint}", style="dim")]
    out += _group_lines(report.groups, severity_style)
    if report.added_groups:
        out += [Text(""), Text("what the added nodes get:", style="bold green")]
        out += _group_lines(report.added_groups, severity_style)
    return out


def _group_lines(groups: tuple[Group, ...], severity_style: dict[str, str]) -> list[Any]:
    """Each group: its nodes, notes, changes and diffs."""
    from rich.text import Text

    out: list[Any] = []
    for index, group in enumerate(groups, 1):
        out.append(Text(""))
        out.append(Text(f"group {index} of {len(groups)}: "
                        f"{plural(len(group.nodes), 'node')}: {group.scope}, "
                        f"severity {group.severity}",
                        style=f"bold {severity_style[group.severity]}"))
        out += [Text(f"  {pattern}", style="cyan") for pattern in group.patterns]
        out += [Text(f"  {line}", style="dim") for line in group_notes(group)]
        for mark, line, diff in change_lines(group.changes):
            style = {"+": "green", "-": "red", "~": "yellow", "!": "red"}[mark]
            out.append(Text(f"  {mark} {line}", style=style))
            out += [_diff_line(d) for d in (diff or "").splitlines()]
    return out


def group_notes(group: Group) -> list[str]:
    """What a reader of a group's one diff must know: which parts are each node's own,
    and where the nodes' changes differ."""
    notes = []
    if group.marked:
        notes.append("node-specific parts marked: " + ", ".join(f"⟨{f}⟩" for f in group.marked))
    if group.varies:
        notes.append("differs per node in: " + ", ".join(group.varies))
    return notes


NODE_HINT = "each group shows its first node's changes; one node's exact diff"


def node_hint(report: PlanReport) -> str | None:
    """The command that shows one node's exact diff, when some group shows several nodes
    as one (said after NODE_HINT)."""
    if not any(len(g.nodes) > 1 for g in report.groups):
        return None
    return f"reconciler plan --base {report.base} --head {report.head} --node NAME"


def _diff_line(line: str) -> Any:
    from rich.text import Text

    return Text(f"      {line}", style=diff_style(line))


def format_text(report: PlanReport) -> str:
    """The plan as plain text (no colour), one line per change, diffs indented."""
    return "".join(f"{line.plain}\n" for line in text_lines(report))
