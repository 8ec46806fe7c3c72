"""The fleet plan as a merge-request comment (Markdown), capped in size."""

from __future__ import annotations

from reconciler.review.model import Group, HeadProblem, PlanReport
from reconciler.review.names import compress_names, plural
from reconciler.review.text import NODE_HINT, change_lines, group_notes, node_hint, short_commit
from reconciler.review.validate import finding_line


def _finding(problem: HeadProblem) -> str:
    return finding_line(problem.problem, problem.nodes)


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`."""
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)),
                  default=0)
    return "`" * max(3, longest + 1)


def _backtick_runs(line: str) -> list[str]:
    runs, current = [], ""
    for char in line:
        if char == "`":
            current += char
        elif current:
            runs.append(current)
            current = ""
    return [*runs, current] if current else runs


def _md(text: str) -> str:
    """Inline code span that survives any content."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def _md_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "\\`*_[]<>|" else c for c in text)


def format_markdown(report: PlanReport, max_bytes: int = 60000) -> str:
    """The plan as a merge-request comment, at most about `max_bytes` bytes.

    Summary first, then one section per group with its diffs in collapsible
    `<details>`. When the cap is reached the rest is cut politely with a note.
    """
    head = [f"### reconciler plan: {_md_escape(report.headline)}", "",
            f"base {_md(report.base + short_commit(report.base_commit))} → "
            f"head {_md(report.head + short_commit(report.head_commit))}", ""]
    if not report.valid:
        head += ["**The head revision is invalid; it must not be merged.**", "", "```text"]
        head += [_finding(p) for p in report.head_problems]
        head += ["```", ""]
        return "\n".join(head)
    for problem in report.base_problems:
        head.append(f"- base problem: {_md(problem)}")
    if report.base_problems:
        head.append("")
    if report.groups:
        head += ["| class | changed | total |", "| --- | ---: | ---: |"]
        head += [f"| {c.name} | {c.changed} | {c.total} |" for c in report.by_class]
        head += ["", "| cluster | changed | total |", "| --- | ---: | ---: |"]
        head += [f"| {c.name} | {c.changed} | {c.total} |" for c in report.by_cluster]
        head += ["", "| severity | nodes |", "| --- | ---: |"]
        head += [f"| {word} | {count} |" for word, count in report.by_severity.items()]
        head.append("")
    for label, nodes in (("added", report.added_nodes), ("removed", report.removed_nodes)):
        if nodes:
            head.append(f"**Nodes {label}** ({len(nodes)}): "
                        + ", ".join(_md(p) for p in compress_names(nodes)))
            head.append("")
    head += [f"- secret {_md(change.variable)} ({_md(change.path)}): {_md_escape(change.change)}"
             for change in report.secrets]
    if report.secrets:
        head.append("")
    hint = node_hint(report)
    if hint:
        head += [f"{_md_escape(NODE_HINT)}: {_md(hint)}", ""]
    text = "\n".join(head) + "\n"
    budget = max_bytes - len(text.encode())
    shown = 0
    for index, group in enumerate(report.groups, 1):
        section = _md_group(index, len(report.groups), group, with_diffs=True)
        if len(section.encode()) > budget:
            section = _md_group(index, len(report.groups), group, with_diffs=False)
        if len(section.encode()) + 400 > budget:
            break
        text += section
        budget -= len(section.encode())
        shown += 1
    if shown < len(report.groups):
        rest = report.groups[shown:]
        text += (f"\n> **{plural(len(rest), 'more group')} of changes "
                 f"({plural(sum(len(g.nodes) for g in rest), 'node')}) not shown**: this "
                 f"comment is capped at {max_bytes} bytes. Run `reconciler plan --base "
                 f"{report.base_commit or report.base} --head {report.head_commit or report.head}`"
                 " or read plan.json for the full plan.\n")
    if report.added_groups and shown == len(report.groups):
        text += "\n### What the added nodes get\n\n"
    for index, group in enumerate(report.added_groups if shown == len(report.groups) else (), 1):
        section = _md_group(index, len(report.added_groups), group, with_diffs=True)
        if len(section.encode()) > budget:
            section = _md_group(index, len(report.added_groups), group, with_diffs=False)
        if len(section.encode()) + 400 > budget:
            text += "\n> the rest is left out: this comment is capped; read plan.json\n"
            break
        text += section
        budget -= len(section.encode())
    return text


def _md_group(index: int, count: int, group: Group, with_diffs: bool) -> str:
    lines = [f"#### {index}/{count}: {plural(len(group.nodes), 'node')} "
             f"({_md_escape(group.scope)}), severity {group.severity}", ""]
    lines.append(", ".join(_md(p) for p in group.patterns))
    lines.append("")
    for note in group_notes(group):
        lines += [f"_{_md_escape(note)}_", ""]
    lines += [f"- {_md(mark)} {_md_escape(text)}" for mark, text, _ in change_lines(group.changes)]
    lines.append("")
    for change in group.changes.files:
        if not change.diff:
            continue
        if not with_diffs:
            lines += [f"_diff of {_md(change.path)} left out "
                      f"({len(change.diff.splitlines())} lines): too large for this comment_", ""]
            continue
        fence = _fence(change.diff)
        lines += [f"<details><summary>diff {_md_escape(change.path)}</summary>", "",
                  f"{fence}diff", change.diff.rstrip("\n"), fence, "", "</details>", ""]
    return "\n".join(lines) + "\n"
