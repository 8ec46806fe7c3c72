"""Comparing one node at two revisions: files, actions, attributes, with severities.

Runs in the plan's worker processes (`init_worker`, `compare_chunk`): each worker keeps
one `Renderer` per revision, so each template compiles once per revision per worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from reconciler.compile.compiler import compile_node
from reconciler.compile.inventory import Fleet
from reconciler.compile.nodeconfig import Action, FileAction, NodeConfig, TreeAction
from reconciler.diff import unified_diff
from reconciler.errors import ConfigError, Problem
from reconciler.facts.model import Facts
from reconciler.plan.severity import effective_severity
from reconciler.render import budget
from reconciler.render.deps import Dependencies
from reconciler.render.renderer import RenderedFile, Renderer
from reconciler.review import contents
from reconciler.review.contents import content_changes
from reconciler.review.grouping import Identity, identity_of
from reconciler.review.model import ActionChange, AttrChange, FileChange, NodeDiff, severity_word
from reconciler.review.records import NodeRecord
from reconciler.review.reuse import Reuse

# Fields that do not describe state on the node: where an action was declared (its
# class, mixins and for-each item), and where its content comes from (the rendered
# content is compared instead, which is also all that an action's variables change).
_NOT_ATTRIBUTES = frozenset(
    {"id", "kind", "name", "path", "origin", "declared_in", "via", "item", "template",
     "source", "content", "vars", "severity",
     "keys"}  # keys, like content, are compared as text (contents.py)
)
# Attributes that change how future changes are applied, not the node itself.
_METADATA = frozenset({"severity", "notify", "requires"})


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
        elif name == "key_sha256" and value is not None:
            shown[name] = value[:12]
        else:
            shown[name] = _show(value)
    shown["severity"] = str(effective_severity(action, node))
    return shown


# Nodes share their policy objects (compiler.py): each is shown once. Entries keep the
# policies alive, so the ids stay theirs.
_policies: dict[int, tuple[object, dict[str, str | None]]] = {}


def _policy_attributes(node: NodeConfig) -> dict[str, str | None]:
    found = _policies.get(id(node.policy))
    if found is None:
        found = _policies[id(node.policy)] = (node.policy, {
            name: _show(value) for name, value in node.policy.model_dump().items()})
    return found[1]


def _compare_attributes(
    old: dict[str, str | None], new: dict[str, str | None]
) -> tuple[AttrChange, ...]:
    return tuple(
        AttrChange(name=name, old=old.get(name), new=new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    )


def file_diff(path: str, old: bytes | None, new: bytes | None) -> tuple[str | None, str | None]:
    """(diff, note): a unified diff of two contents of `path`, or a note when none can be shown."""
    if new is None:
        return None, "declared absent: removed from the node"
    diff = unified_diff(old, new, "/dev/null" if old is None else f"a{path}", f"b{path}")
    if diff is None:
        size = "nothing" if old is None else f"{len(old)} bytes"
        return None, f"binary content changed ({size} → {len(new)} bytes)"
    return diff, None


# The actions of every node of a class are the same objects (resolved once per class and
# revision), and what differs between two such sets does not depend on the node: compare
# each pair once. Keyed by the actions' ids (each node holds its own copy of the tuple);
# entries keep the actions alive, so the ids stay theirs.
_action_diffs: dict[tuple[tuple[int, ...] | None, tuple[int, ...]],
                    tuple[object, object, tuple[ActionChange, ...]]] = {}


def compare_actions(base: NodeConfig | None, head: NodeConfig) -> tuple[ActionChange, ...]:
    """Actions added, removed, or with changed attributes between two compiled nodes."""
    key = (tuple(map(id, base.actions)) if base is not None else None,
           tuple(map(id, head.actions)))
    cached = _action_diffs.get(key)
    if cached is not None:
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
        severity = severity_word(effective_severity(now, head))
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
        if old is not None and _same(old, new):
            continue
        severity = severity_word(effective_severity(new.action, head))
        secret = new.action.secret or (old is not None and old.action.secret)
        unknown = tuple(sorted({*new.unknown_facts, *(old.unknown_facts if old else ())}))
        diff: str | None
        note: str | None
        if new.undecided or (old is not None and old.undecided):
            diff, note = None, (f"depends on {', '.join(unknown)}, not known for this node "
                                "(no published facts): not rendered")
        elif secret:
            diff, note = None, "new secret file" if old is None else "secret changed"
            if new.content is None:
                note = "declared absent: removed from the node"
        else:
            diff, note = file_diff(path, old.content if old else None, new.content)
            # Unknown facts matter only where the diff shows them: a change beside
            # them is exact.
            unknown = tuple(name for name in unknown if name in (diff or ""))
            if unknown:
                note = "; ".join(filter(None, [note, f"{', '.join(unknown)} shown as "
                                           "placeholders (no published facts)"]))
        files.append(FileChange(path=path, action=new.action.id,
                                status="new" if old is None else "changed",
                                severity=severity, diff=diff, note=note, facts=unknown))
    if base is head:  # one compiled config for both revisions: only contents can differ
        return NodeDiff(files=tuple(files),
                        base_problems=tuple(str(replace(p, node=None)) for p in base_problems))
    files.extend(content_changes(base, head))
    actions = list(compare_actions(base, head))
    if base is not None:
        policy = _compare_attributes(_policy_attributes(base), _policy_attributes(head))
        if policy:
            actions.append(ActionChange(action="policy", status="changed", severity="none",
                                        attributes=policy))
    return NodeDiff(files=tuple(files), actions=tuple(actions),
                    base_problems=tuple(str(replace(p, node=None)) for p in base_problems))


def _same(old: RenderedFile, new: RenderedFile) -> bool:
    """Equal desired content; for files not rendered for want of facts, equal inputs."""
    if old.undecided or new.undecided:
        return old.inputs == new.inputs
    return old.content == new.content


@dataclass(frozen=True)
class NodeOutcome:
    """What a worker found for one node: its diff and identity when it changes or is new
    (None and nothing when it does not change), or head problems; and the node's
    dependency records at head (and base, when asked for)."""

    name: str
    diff: NodeDiff | None = None
    added: bool = False
    head_problems: tuple[Problem, ...] = ()
    identity: Identity = ()
    record: NodeRecord | None = None
    base_record: NodeRecord | None = None


@dataclass(frozen=True)
class Side:
    """One revision in a worker: its renderer and the dependencies of its nodes."""

    renderer: Renderer
    deps: Dependencies
    # Records by the node's actions (their ids; the entry keeps them alive) and chain:
    # the nodes of a class share one.
    records: dict[tuple[tuple[int, ...], tuple[str, ...], bool],
                  tuple[tuple[Action, ...], NodeRecord]] = field(default_factory=dict)

    def record(self, node: NodeConfig, ok: bool) -> NodeRecord:
        key = (tuple(map(id, node.actions)), node.class_chain, ok)
        found = self.records.get(key)
        if found is None:
            record = NodeRecord(
                ok, tuple(sorted(self.deps.compiled(self.renderer.fleet, node))),
                tuple((a.id, tuple(sorted(self.deps.action(a))))
                      for a in node.actions if isinstance(a, FileAction | TreeAction)))
            found = self.records[key] = (node.actions, record)
        return found[1]


def compare_node(base: Side | None, head: Side, name: str,
                 only: frozenset[str] | None = None, base_records: bool = False,
                 reuse: Reuse | None = None) -> NodeOutcome:
    """Compile and render node `name` at head (and base, when it exists there) and compare.

    With `only`, the node's compiled config is known to be the same at both revisions
    (review/incremental.py): it is compiled once and just those actions are rendered.
    Otherwise it is compiled at both, and rendered at both but for the files that `reuse`
    shows the base renders exactly like the head (review/reuse.py)."""
    try:
        head_node = compile_node(head.renderer.fleet, name)
    except ConfigError as exc:
        return NodeOutcome(name, head_problems=tuple(exc.problems))
    head_files, problems = budget.render_timed(head.renderer, head_node,
                                               budget.REVIEW_CPU_SECONDS, only)
    if problems:
        return NodeOutcome(name, head_problems=tuple(problems))
    record = head.record(head_node, True)
    if base is None or name not in base.renderer.fleet.nodes:  # everything it gets is new
        return NodeOutcome(name, diff=diff_node(None, [], head_node, head_files), added=True,
                           identity=identity_of(head_node), record=record)
    base_node: NodeConfig | None = None
    base_files: list[RenderedFile] = []
    if only is not None:
        base_node = head_node
        base_files, base_problems = budget.render_timed(base.renderer, head_node,
                                                        budget.REVIEW_CPU_SECONDS, only)
    else:
        try:
            base_node = compile_node(base.renderer.fleet, name)
            kept = reuse.kept(base_node, head_node, head_files, head.deps) \
                if reuse is not None else frozenset()
            base_files, base_problems = _render_base(base, base_node, head_files, kept)
        except ConfigError as exc:
            base_problems = exc.problems
    base_record = None
    if base_records:
        base_record = base.record(base_node, not base_problems) if base_node is not None \
            else NodeRecord(False, (), ())
    diff = diff_node(base_node, base_files, head_node, head_files, base_problems)
    if diff.empty:  # most nodes of a plan: nothing to send but their records
        return NodeOutcome(name, record=record, base_record=base_record)
    return NodeOutcome(name, diff=diff, identity=identity_of(head_node), record=record,
                       base_record=base_record)


def _render_base(base: Side, node: NodeConfig, head_files: Sequence[RenderedFile],
                 kept: frozenset[str]) -> tuple[list[RenderedFile], list[Problem]]:
    """The node's files at the base: the head's for the actions in `kept`, the others
    rendered; all rendered when a kept file's path is also a rendered one's (the full
    render names that collision as a problem)."""
    if not kept:
        return budget.render_timed(base.renderer, node, budget.REVIEW_CPU_SECONDS)
    reused = [item for item in head_files if item.action.id in kept]
    rest = frozenset(a.id for a in node.actions
                     if a.id not in kept and isinstance(a, FileAction | TreeAction))
    if not rest:  # most nodes of a plan: every file is the head's
        return reused, []
    files, problems = budget.render_timed(base.renderer, node, budget.REVIEW_CPU_SECONDS, rest)
    if {item.path for item in files} & {item.path for item in reused}:
        return budget.render_timed(base.renderer, node, budget.REVIEW_CPU_SECONDS)
    return files + reused, problems


@dataclass(frozen=True)
class _Worker:
    base: Side | None
    head: Side
    only: Mapping[str, frozenset[str] | None]
    base_records: bool
    reuse: Reuse | None


_worker: _Worker | None = None


def init_worker(base: Fleet | None, head: Fleet, facts: Mapping[str, Facts] | None = None,
                only: Mapping[str, frozenset[str] | None] | None = None,
                base_records: bool = False, changed: frozenset[str] | None = None,
                compiled: tuple[str, str] | None = None) -> None:
    """Set a worker up with one renderer per revision (and an empty action-diff cache),
    rendering with the nodes' published `facts`; `only` names the actions to render of
    nodes whose compiled config is the same at both revisions; `base_records` asks for
    the base's dependency records too; `changed`, the repo paths that differ between the
    revisions, lets nodes whose files cannot differ be rendered once (None: never);
    `compiled`, the directories that keep the base's and the head's compiled templates
    between plans (render/bytecode.py), spares each worker compiling them again."""
    global _worker

    def side(fleet: Fleet, kept: str | None) -> Side:
        renderer = Renderer(fleet, bytecode_dir=kept, facts=facts)
        return Side(renderer, Dependencies(renderer))

    base_dir, head_dir = compiled or (None, None)
    _worker = _Worker(side(base, base_dir) if base is not None else None, side(head, head_dir),
                      only or {}, base_records, Reuse(changed) if changed is not None else None)
    _action_diffs.clear()
    _policies.clear()
    contents.clear()


def compare_chunk(chunk: list[str]) -> list[NodeOutcome]:
    """Compare the nodes of one chunk in a worker set up by `init_worker`."""
    assert _worker is not None
    with budget.timing():
        outcomes = [compare_node(_worker.base, _worker.head, name, _worker.only.get(name),
                                 _worker.base_records, _worker.reuse) for name in chunk]
    for side in (_worker.base, _worker.head):
        if side is not None:
            side.renderer.save_cache()  # writes only when this chunk compiled a template
    return outcomes
