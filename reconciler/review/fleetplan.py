"""Review a change to the config repo: what it does to every node of the fleet.

`plan_fleet` compiles and renders every node at two revisions in forked worker
processes (one `Renderer` per revision per worker, so each template compiles once per
revision per worker) and compares them node by node. Workers send back only per-node
differences, never renders; the parent groups nodes whose differences are identical
as results stream in, so a change shared by 240 proxies is held and shown once.

A head that does not compile or render makes the plan invalid (exit 1, with the same
grouped `path:line` errors as `validate`). A base that does not load is reported and
nothing is compared; a base node that fails to render is compared on what did render,
with its problems attached to its group. Secrets never reach a diff: a changed
secret file reads "secret changed".
"""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.compile import names
from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.compile.nodeconfig import Action, NodeConfig, Severity
from reconciler.errors import ConfigError, Problem
from reconciler.plan.build import effective_severity
from reconciler.record.report import diff_style
from reconciler.render.renderer import RenderedFile, Renderer, render_node
from reconciler.review.validate import finding_line, validate
from reconciler.review.workers import default_jobs, fan_out
from reconciler.source.snapshot import Snapshot, open_snapshot

SeverityWord = Literal["none", "reload", "restart", "reboot"]

EXIT_NO_CHANGES = 0
EXIT_INVALID = 1
EXIT_CHANGES = 2

# Fields that do not describe state on the node: where an action was declared, and
# where its content comes from (the rendered content is compared instead).
_NOT_ATTRIBUTES = frozenset(
    {"id", "kind", "name", "path", "origin", "declared_in", "template", "source", "content",
     "severity"}
)
# Attributes that change how future changes are applied, not the node itself.
_METADATA = frozenset({"severity", "notify", "requires"})


# ---------------------------------------------------------------- values


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AttrChange(_Model):
    """One attribute of an action that differs: `mode 0644 → 0640`. None means unset."""

    name: str
    old: str | None = None
    new: str | None = None


class FileChange(_Model):
    """A managed path whose desired content differs between base and head.

    `status`: `changed` (managed at both), `new` (managed only at head), `unmanaged`
    (managed only at base: left as it is on the node). `diff` is a unified diff, or
    None when `note` says why there is none (secret, binary, absent).
    """

    path: str
    action: str = Field(description="id of the file or tree action that manages the path")
    status: Literal["changed", "new", "unmanaged"]
    severity: SeverityWord
    diff: str | None = None
    note: str | None = None


class ActionChange(_Model):
    """An action added, removed, or whose attributes (mode, owner, version, state...) changed.

    `policy` is a pseudo-action for the node's agent policy (mode, ceiling, interval...).
    """

    action: str
    status: Literal["added", "removed", "changed"]
    severity: SeverityWord
    attributes: tuple[AttrChange, ...] = ()


class NodeDiff(_Model):
    """Everything that differs for one node; equal values group nodes together."""

    files: tuple[FileChange, ...] = ()
    actions: tuple[ActionChange, ...] = ()
    base_problems: tuple[str, ...] = Field(
        (), description="problems met compiling or rendering this node at the base revision"
    )

    @property
    def empty(self) -> bool:
        return not (self.files or self.actions or self.base_problems)

    @property
    def severity(self) -> SeverityWord:
        return max_severity([*(f.severity for f in self.files),
                             *(a.severity for a in self.actions)])


class Group(_Model):
    """Nodes sharing exactly the same differences, shown once."""

    nodes: tuple[str, ...]
    patterns: tuple[str, ...] = Field(
        description="the node list compressed, e.g. proxy-[01-40].tickets.chi1.sa")
    scope: str = Field(
        description="classes and clusters of the nodes, e.g. 'proxy, all clusters'")
    severity: SeverityWord
    changes: NodeDiff


class Count(_Model):
    """Nodes that change out of all nodes, for one class or one cluster."""

    name: str
    changed: int
    total: int


class HeadProblem(_Model):
    """One distinct problem of the head revision and how many nodes share it (as `validate`)."""

    problem: str = Field(description="path:line: message")
    nodes: int


class PlanReport(_Model):
    """The fleet-wide plan between two revisions: the JSON of `reconciler plan --format json`."""

    base: str = Field(description="the base revision as given")
    head: str = Field(description="the head revision as given")
    base_commit: str | None
    head_commit: str | None
    valid: bool = Field(description="false when the head revision is invalid")
    head_problems: tuple[HeadProblem, ...] = ()
    base_problems: tuple[str, ...] = Field(
        (), description="the base revision does not load: nothing could be compared"
    )
    headline: str
    total_nodes: int = Field(description="nodes in the fleet at head")
    changed_nodes: int = Field(description="nodes present at both revisions whose config differs")
    severity: SeverityWord = Field(description="the highest severity any change carries")
    scope: str
    by_class: tuple[Count, ...] = ()
    by_cluster: tuple[Count, ...] = ()
    by_severity: dict[str, int] = Field(default_factory=dict)
    added_nodes: tuple[str, ...] = ()
    removed_nodes: tuple[str, ...] = ()
    groups: tuple[Group, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 nothing changes, 1 the head is invalid, 2 something changes."""
        if not self.valid:
            return EXIT_INVALID
        if self.changed_nodes or self.added_nodes or self.removed_nodes or self.base_problems:
            return EXIT_CHANGES
        return EXIT_NO_CHANGES


def max_severity(words: Iterable[str]) -> SeverityWord:
    """The highest of some severity words ("none" for none)."""
    top = max((Severity.parse(w) for w in words), default=Severity.NONE)
    return _word(top)


def _word(severity: Severity) -> SeverityWord:
    word: SeverityWord = str(Severity(severity))  # type: ignore[assignment]
    return word


# ---------------------------------------------------------------- comparing one node


def _show(value: Any) -> str | None:
    """An attribute value as reviewers read it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return " ".join(filter(None, (_show(v) for v in value))) or None
    if isinstance(value, BaseModel):
        return " ".join(f"{k}={_show(v)}" for k, v in value.model_dump().items() if v is not None)
    return str(value)


def _attributes(action: Action, node: NodeConfig) -> dict[str, str | None]:
    """The attributes of an action that matter on the node, as strings."""
    shown: dict[str, str | None] = {}
    for name in type(action).model_fields:
        if name in _NOT_ATTRIBUTES:
            continue
        value = getattr(action, name)
        if name in ("mode", "dir_mode") and value is not None:
            shown[name] = f"{value:04o}"
        elif name == "notify":
            shown[name] = " ".join(f"{n.target}:{n.verb}" for n in value) or None
        elif name == "secret":
            continue  # shown through the files it protects
        else:
            shown[name] = _show(value)
    shown["severity"] = str(effective_severity(action, node))
    return shown


def _policy_attributes(node: NodeConfig) -> dict[str, str | None]:
    return {name: _show(value) for name, value in node.policy.model_dump().items()}


def _compare_attributes(
    old: dict[str, str | None], new: dict[str, str | None]
) -> tuple[AttrChange, ...]:
    return tuple(
        AttrChange(name=name, old=old.get(name), new=new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    )


def _diff_lines(content: bytes) -> list[str] | None:
    """The lines of a text file for difflib, or None when it is not UTF-8 text."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> tuple[str | None, str | None]:
    """(diff, note): a unified diff of two contents of `path`, or a note when none can be shown."""
    if new is None:
        return None, "declared absent: removed from the node"
    old_lines = _diff_lines(old) if old is not None else []
    new_lines = _diff_lines(new)
    if old_lines is None or new_lines is None:
        size = "nothing" if old is None else f"{len(old)} bytes"
        return None, f"binary content changed ({size} → {len(new)} bytes)"
    diff = "".join(difflib.unified_diff(
        old_lines, new_lines, "/dev/null" if old is None else f"a{path}", f"b{path}"))
    return diff, None


# The actions of every node of a class are one shared tuple (compiled once per class and
# revision), and what differs between two such tuples does not depend on the node:
# compare each pair once. Entries keep their tuples alive, so the ids stay theirs.
_action_diffs: dict[tuple[int, int], tuple[object, object, tuple[ActionChange, ...]]] = {}


def compare_actions(base: NodeConfig | None, head: NodeConfig) -> tuple[ActionChange, ...]:
    """Actions added, removed, or with changed attributes between two compiled nodes."""
    key = (id(base.actions) if base is not None else 0, id(head.actions))
    cached = _action_diffs.get(key)
    if cached is not None and cached[0] is (base.actions if base else None) \
            and cached[1] is head.actions:
        return cached[2]
    actions: list[ActionChange] = []
    old_actions = {a.id: a for a in base.actions} if base is not None else {}
    new_actions = {a.id: a for a in head.actions}
    for action_id in sorted(old_actions.keys() | new_actions.keys()):
        was, now = old_actions.get(action_id), new_actions.get(action_id)
        if now is None:
            actions.append(ActionChange(action=action_id, status="removed", severity="none"))
            continue
        new_attrs = _attributes(now, head)
        severity = _word(effective_severity(now, head))
        if was is None:
            added = _compare_attributes({}, new_attrs)
            actions.append(ActionChange(action=action_id, status="added", attributes=added,
                                        severity=severity))
            continue
        assert base is not None
        changed = _compare_attributes(_attributes(was, base), new_attrs)
        if changed:
            touches_node = any(c.name not in _METADATA for c in changed)
            actions.append(ActionChange(action=action_id, status="changed", attributes=changed,
                                        severity=severity if touches_node else "none"))
    result = tuple(actions)
    _action_diffs[key] = (base.actions if base else None, head.actions, result)
    return result


def diff_node(
    base: NodeConfig | None,
    base_files: Sequence[RenderedFile],
    head: NodeConfig,
    head_files: Sequence[RenderedFile],
    base_problems: Sequence[Problem] = (),
) -> NodeDiff:
    """Compare one node at two revisions: files, actions, attributes, with severities.

    `base` is None when the node could not be compiled at the base revision; its
    problems are kept so the reviewer knows why everything looks new.
    """
    files: list[FileChange] = []
    old_files = {f.path: f for f in base_files}
    new_files = {f.path: f for f in head_files}
    for path in sorted(old_files.keys() | new_files.keys()):
        old, new = old_files.get(path), new_files.get(path)
        if new is None:
            assert old is not None
            files.append(FileChange(path=path, action=old.action.id, status="unmanaged",
                                    severity="none", note="no longer managed: left as it is"))
            continue
        if old is not None and old.content == new.content:
            continue
        severity = _word(effective_severity(new.action, head))
        secret = new.action.secret or (old is not None and old.action.secret)
        diff: str | None
        note: str | None
        if secret:
            diff, note = None, "new secret file" if old is None else "secret changed"
            if new.content is None:
                note = "declared absent: removed from the node"
        else:
            diff, note = unified_diff(path, old.content if old else None, new.content)
        files.append(FileChange(path=path, action=new.action.id,
                                status="new" if old is None else "changed",
                                severity=severity, diff=diff, note=note))
    actions = list(compare_actions(base, head))
    if base is not None:
        policy = _compare_attributes(_policy_attributes(base), _policy_attributes(head))
        if policy:
            actions.append(ActionChange(action="policy", status="changed", severity="none",
                                        attributes=policy))
    return NodeDiff(files=tuple(files), actions=tuple(actions),
                    base_problems=tuple(str(replace(p, node=None)) for p in base_problems))


# ---------------------------------------------------------------- one node in a worker


@dataclass(frozen=True)
class NodeOutcome:
    """What a worker found for one node: its diff, or that it is new, or head problems."""

    name: str
    diff: NodeDiff | None = None
    added: bool = False
    head_problems: tuple[Problem, ...] = ()


def compare_node(base: Renderer | None, head: Renderer, name: str) -> NodeOutcome:
    """Compile and render node `name` at head (and base, when it exists there) and compare."""
    try:
        head_node = compile_node(head.fleet, name)
    except ConfigError as exc:
        return NodeOutcome(name, head_problems=tuple(exc.problems))
    head_files, problems = render_node(head, head_node)
    if problems:
        return NodeOutcome(name, head_problems=tuple(problems))
    if base is None or name not in base.fleet.nodes:
        return NodeOutcome(name, added=True)
    base_node: NodeConfig | None = None
    base_files: list[RenderedFile] = []
    try:
        base_node = compile_node(base.fleet, name)
        base_files, base_problems = render_node(base, base_node)
    except ConfigError as exc:
        base_problems = exc.problems
    return NodeOutcome(name, diff=diff_node(base_node, base_files, head_node, head_files,
                                            base_problems))


_renderers: tuple[Renderer | None, Renderer] | None = None


def _init_worker(base: Fleet | None, head: Fleet) -> None:
    global _renderers
    _renderers = (Renderer(base) if base is not None else None, Renderer(head))
    _action_diffs.clear()


def _compare_chunk(chunk: list[str]) -> list[NodeOutcome]:
    assert _renderers is not None
    base, head = _renderers
    return [compare_node(base, head, name) for name in chunk]


# ---------------------------------------------------------------- node names


def _ranges(numbers: list[int], width: int) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        first, last = f"{start:0{width}d}", f"{prev:0{width}d}"
        parts.append(first if start == prev else f"{first}-{last}")
        if number is not None:
            start = prev = number
    return ",".join(parts)


def _braces(values: list[str]) -> str:
    return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"


def compress_names(node_names: Iterable[str]) -> list[str]:
    """Node names as a few patterns: `proxy-[01-40].tickets.{chi1,chi2}.sa`."""
    numbers: dict[tuple[str, str, str, str, int], list[int]] = defaultdict(list)
    odd: list[str] = []
    for fqdn in node_names:
        try:
            n = names.parse(fqdn)
        except names.NodeNameError:
            odd.append(fqdn)
            continue
        numbers[(n.cls, n.product, n.cluster, n.domain, n.width)].append(n.number)
    hosts: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (host, product, domain)
    for (cls, product, cluster, domain, width), found in sorted(numbers.items()):
        found.sort()
        if len(found) == 1:
            host = f"{cls}-{found[0]:0{width}d}"
        else:
            host = f"{cls}-[{_ranges(found, width)}]"
        hosts[(host, product, domain)].append(cluster)
    by_product: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for (host, product, domain), clusters in hosts.items():
        by_product[(host, _braces(clusters), domain)].append(product)
    patterns = [f"{host}.{_braces(products)}.{clusters}.{domain}"
                for (host, clusters, domain), products in by_product.items()]
    return sorted(patterns) + sorted(odd)


def describe_scope(node_names: Iterable[str], all_clusters: Iterable[str]) -> str:
    """Classes and clusters of some nodes: `proxy, all clusters` or `proxy + app, cluster chi1`."""
    classes: list[str] = []
    clusters: set[str] = set()
    for fqdn in node_names:
        try:
            n = names.parse(fqdn)
        except names.NodeNameError:
            continue
        if n.cls not in classes:
            classes.append(n.cls)
        clusters.add(n.cluster)
    if not classes:
        return "no nodes"
    every = set(all_clusters)
    if clusters == every and len(every) > 1:
        where = "all clusters"
    elif len(clusters) == 1:
        where = f"cluster {next(iter(clusters))}"
    else:
        where = "clusters " + " + ".join(sorted(clusters))
    return f"{' + '.join(sorted(classes))}, {where}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# ---------------------------------------------------------------- the fleet


def _outcomes(
    base: Fleet | None, head: Fleet, node_names: list[str], jobs: int,
    progress: Callable[[int], None] | None,
) -> Iterable[NodeOutcome]:
    """Every node's outcome, as workers finish (in order of completion)."""
    for _, size, outcomes in fan_out(node_names, jobs, _init_worker, (base, head),
                                     _compare_chunk):
        yield from outcomes
        if progress:
            progress(size)


def _head_findings(snapshot: Snapshot, jobs: int) -> tuple[HeadProblem, ...]:
    """The head's problems exactly as `validate` groups and counts them."""
    result = validate(snapshot, jobs)
    return tuple(HeadProblem(problem=str(f.problem), nodes=f.nodes) for f in result.findings)


def plan_fleet(
    repo: str,
    base_rev: str,
    head_rev: str,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PlanReport:
    """Compare every node of the fleet at `base_rev` and `head_rev` of `repo`.

    `progress(done, total)` is called as nodes finish. Raises ConfigError only when a
    revision cannot be opened at all (not a repo, unknown revision).
    """
    jobs = jobs or default_jobs()
    head_snapshot = open_snapshot(repo, head_rev)
    base_snapshot = open_snapshot(repo, base_rev)
    commits = {"base": base_rev, "head": head_rev, "base_commit": base_snapshot.revision,
               "head_commit": head_snapshot.revision}
    try:
        head = load_fleet(head_snapshot)
    except ConfigError:
        return _invalid(commits, _head_findings(head_snapshot, jobs))
    base: Fleet | None
    base_problems: tuple[str, ...] = ()
    try:
        base = load_fleet(base_snapshot)
    except ConfigError as exc:
        base, base_problems = None, tuple(str(p) for p in exc.problems)
    head_names = head.node_names()
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, len(head_names))

    groups: dict[NodeDiff, list[str]] = {}
    added: list[str] = []
    invalid = False
    for outcome in _outcomes(base, head, head_names, jobs, advance):
        if outcome.head_problems:
            invalid = True
        elif outcome.added:
            added.append(outcome.name)
        elif outcome.diff is not None and not outcome.diff.empty:
            groups.setdefault(outcome.diff, []).append(outcome.name)
    if invalid:
        return _invalid(commits, _head_findings(head_snapshot, jobs))
    removed = sorted(set(base.nodes) - set(head.nodes), key=names.parse) if base else []
    return _report(commits, head, groups, added, removed, base_problems)


def _invalid(commits: dict[str, Any], problems: tuple[HeadProblem, ...]) -> PlanReport:
    return PlanReport(**commits, valid=False, head_problems=problems, total_nodes=0,
                      changed_nodes=0, severity="none", scope="",
                      headline=f"head {commits['head']} is invalid: "
                               f"{_plural(len(problems), 'distinct problem')}")


def _report(
    commits: dict[str, Any], head: Fleet, found: dict[NodeDiff, list[str]], added: list[str],
    removed: list[str], base_problems: tuple[str, ...],
) -> PlanReport:
    clusters = sorted({d.name.cluster for d in head.nodes.values()})
    groups = []
    for diff, members in found.items():
        members.sort(key=names.parse)
        groups.append(Group(nodes=tuple(members), patterns=tuple(compress_names(members)),
                            scope=describe_scope(members, clusters), severity=diff.severity,
                            changes=diff))
    groups.sort(key=lambda g: (-Severity.parse(g.severity), -len(g.nodes), names.parse(g.nodes[0])))
    changed = [n for g in groups for n in g.nodes]
    changed_set = set(changed)
    total_by_class = Counter(d.name.cls for d in head.nodes.values())
    total_by_cluster = Counter(d.name.cluster for d in head.nodes.values())
    changed_by_class = Counter(names.parse(n).cls for n in changed)
    changed_by_cluster = Counter(names.parse(n).cluster for n in changed)
    by_severity: Counter[str] = Counter(g.severity for g in groups for _ in g.nodes)
    severity = max_severity(g.severity for g in groups)
    scope = describe_scope(changed, clusters)
    total = len(head.nodes)
    if base_problems:
        headline = (f"base {commits['base']} is invalid: {_plural(total, 'node')} "
                    "could not be compared")
    elif changed_set:
        headline = f"{len(changed_set)} of {total} nodes change ({scope}), severity {severity}"
    else:
        headline = f"no node changes ({_plural(total, 'node')})"
    extra = [f"{_plural(len(added), 'node')} added" if added else "",
             f"{_plural(len(removed), 'node')} removed" if removed else ""]
    if any(extra):
        headline += "; " + ", ".join(e for e in extra if e)
    return PlanReport(
        **commits, valid=True, base_problems=base_problems, headline=headline, total_nodes=total,
        changed_nodes=len(changed_set), severity=severity, scope=scope if changed_set else "",
        by_class=tuple(Count(name=c, changed=changed_by_class[c], total=total_by_class[c])
                       for c in sorted(total_by_class)),
        by_cluster=tuple(Count(name=c, changed=changed_by_cluster[c], total=total_by_cluster[c])
                         for c in sorted(total_by_cluster)),
        by_severity={str(s): by_severity[str(s)] for s in reversed(Severity)
                     if by_severity[str(s)]},
        added_nodes=tuple(sorted(added, key=names.parse)), removed_nodes=tuple(removed),
        groups=tuple(groups),
    )


# ---------------------------------------------------------------- formats


def _short(commit: str | None) -> str:
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
    out: list[Any] = [Text(f"plan {report.base}{_short(report.base_commit)} → "
                           f"{report.head}{_short(report.head_commit)}", style="dim")]
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
            out.append(Text(f"nodes {label}: {_plural(len(nodes), 'node')}: "
                            + " ".join(compress_names(nodes)),
                            style="green" if label == "added" else "red"))
    for index, group in enumerate(report.groups, 1):
        out.append(Text(""))
        out.append(Text(f"group {index} of {len(report.groups)}: "
                        f"{_plural(len(group.nodes), 'node')}: {group.scope}, "
                        f"severity {group.severity}",
                        style=f"bold {severity_style[group.severity]}"))
        out += [Text(f"  {pattern}", style="cyan") for pattern in group.patterns]
        for mark, line, diff in change_lines(group.changes):
            style = {"+": "green", "-": "red", "~": "yellow", "!": "red"}[mark]
            out.append(Text(f"  {mark} {line}", style=style))
            out += [_diff_line(d) for d in (diff or "").splitlines()]
    return out


def _diff_line(line: str) -> Any:
    from rich.text import Text

    return Text(f"      {line}", style=diff_style(line))


def _finding(problem: HeadProblem) -> str:
    return finding_line(problem.problem, problem.nodes)


def format_text(report: PlanReport) -> str:
    """The plan as plain text (no colour), one line per change, diffs indented."""
    return "".join(f"{line.plain}\n" for line in text_lines(report))


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
            f"base {_md(report.base + _short(report.base_commit))} → "
            f"head {_md(report.head + _short(report.head_commit))}", ""]
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
        text += (f"\n> **{_plural(len(rest), 'more group')} of changes "
                 f"({_plural(sum(len(g.nodes) for g in rest), 'node')}) not shown**: this "
                 f"comment is capped at {max_bytes} bytes. Run `reconciler plan --base "
                 f"{report.base_commit or report.base} --head {report.head_commit or report.head}`"
                 " or read plan.json for the full plan.\n")
    return text


def _md_group(index: int, count: int, group: Group, with_diffs: bool) -> str:
    lines = [f"#### {index}/{count}: {_plural(len(group.nodes), 'node')} "
             f"({_md_escape(group.scope)}), severity {group.severity}", ""]
    lines.append(", ".join(_md(p) for p in group.patterns))
    lines.append("")
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
