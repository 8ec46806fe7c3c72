"""Grouping nodes by what their change is, not by its bytes.

Two nodes belong together when their changes are the same once each node's own
identity (its name, host, class, product, cluster, number, and the variables set on
the node itself) is abstracted, and only the `+`/`-` lines of diffs count: context
lines that show the node's name do not split 240 proxies into 240 groups. Nodes whose
changes still differ (a value computed from the node number) are grouped by the shape
of their change — the same files and actions, changed the same way — and the group
says where they differ. Each group shows one representative with the node-specific
parts marked (`⟨node.name⟩`, `⟨per node: 11, 21, …⟩`) and keeps every node's exact digest.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reconciler.compile import names
from reconciler.compile.nodeconfig import NodeConfig
from reconciler.review.model import ActionChange, FileChange, NodeDiff

PER_NODE_WORDS = "per node"
_EXAMPLES = 3  # values shown of one that differs per node
# Values of variables set on the node itself shorter than this are too likely to occur
# by chance in unrelated lines ("on", "1") to be read as the node's own.
_MIN_VARIABLE = 3
_TOKENS = re.compile(r"⟨[^⟩]*⟩|\w+|\s+|.")

Identity = tuple[tuple[str, str], ...]
Abstract = Callable[[str], str]


@dataclass(frozen=True)
class Member:
    """One changed node: its exact changes and the values that make up its identity."""

    name: str
    diff: NodeDiff
    identity: Identity


@dataclass(frozen=True)
class Grouped:
    """Nodes that make one change: a representative with node-specific parts marked."""

    nodes: tuple[str, ...]
    changes: NodeDiff
    marked: tuple[str, ...]
    varies: tuple[str, ...]
    digests: dict[str, str]


def identity_of(node: NodeConfig) -> Identity:
    """The values that are this node's own by construction, as (field, value): its name
    and the parts of it, and the plain values of variables set on the node itself."""
    host = node.name.split(".", 1)[0]
    fields = [("node.name", node.name), ("node.host", host), ("node.cls", node.cls),
              ("node.product", node.product), ("node.cluster", node.cluster),
              ("node.number", host.rsplit("-", 1)[-1]), ("node.number", str(node.number))]
    for name, var in sorted(node.variables.items()):
        value = var.value
        if var.set_by.layer == "node" and not var.secret and not isinstance(value, bool) \
                and isinstance(value, str | int) and len(str(value)) >= _MIN_VARIABLE:
            fields.append((f"var.{name}", str(value)))
    return tuple(fields)


def digest(diff: NodeDiff) -> str:
    """sha256 of a node's exact changes (their JSON), as `plan --node` shows them."""
    return hashlib.sha256(diff.model_dump_json().encode()).hexdigest()


def abstraction(identity: Identity, fields: Iterable[str] | None = None) -> Abstract:
    """A function that writes `⟨field⟩` for the identity values in a text (whole words
    only, longest first); only `fields` when given."""
    allowed = None if fields is None else set(fields)
    by_value: dict[str, str] = {}
    for field, value in identity:
        if value and (allowed is None or field in allowed):
            by_value.setdefault(value, field)
    if not by_value:
        return _same
    values = sorted(by_value, key=len, reverse=True)
    return lambda text: _marked(text, values, by_value)


def _marked(text: str, values: list[str], by_value: dict[str, str]) -> str:
    """`text` with each whole-word occurrence of `values` (longest first, never inside
    another) written `⟨field⟩`; plain string search, as a regular expression per node
    would cost more to compile than to run."""
    spans: list[tuple[int, int, str]] = []
    for value in values:
        start = text.find(value)
        while start != -1:
            end = start + len(value)
            if not _word(text, start - 1) and not _word(text, end) \
                    and not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, by_value[value]))
            start = text.find(value, start + 1)
    if not spans:
        return text
    out, position = [], 0
    for start, end, field in sorted(spans):
        out += [text[position:start], f"⟨{field}⟩"]
        position = end
    out.append(text[position:])
    return "".join(out)


def _word(text: str, index: int) -> bool:
    """Whether the character at `index` continues a word (letters, digits, _)."""
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


def _same(text: str) -> str:
    return text


def changed_lines(diff: str | None) -> tuple[str, ...]:
    """The `+` and `-` lines of a unified diff (no headers, hunk ranges or context)."""
    if diff is None:
        return ()
    lines = diff.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("@@")), len(lines))
    return tuple(line for line in lines[start:] if line[:1] in ("+", "-"))


def _file_key(change: FileChange, f: Abstract) -> tuple[object, ...]:
    return (f(change.path), f(change.action), change.status, change.severity,
            f(change.note or ""), change.facts,
            tuple(f(line) for line in changed_lines(change.diff)))


def _action_key(change: ActionChange, f: Abstract) -> str:
    return f(change.model_dump_json())


def change_key(diff: NodeDiff, f: Abstract) -> tuple[object, ...]:
    """What a node's change is, through `f`: diffs by their +/- lines only."""
    return (tuple(_file_key(c, f) for c in diff.files),
            tuple(_action_key(a, f) for a in diff.actions),
            tuple(f(p) for p in diff.base_problems))


def _shape(diff: NodeDiff, f: Abstract) -> tuple[object, ...]:
    """Which files and actions change and how, without what the change says."""
    return (tuple((f(c.path), f(c.action), c.status, c.severity, c.diff is None,
                   tuple(c.facts)) for c in diff.files),
            tuple((f(a.action), a.status, a.severity, tuple(x.name for x in a.attributes))
                  for a in diff.actions), len(diff.base_problems))


class _Sets:
    """Union-find over member indices."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def group_members(members: Sequence[Member], exact: bool = False) -> list[Grouped]:
    """Group changed nodes by what their change is (see the module docstring); with
    `exact`, only nodes whose changes are identical byte for byte."""
    sets = _Sets(len(members))
    first: dict[object, int] = {}
    for index, member in enumerate(members):
        keys: list[object] = [member.diff] if exact else \
            [("exact", change_key(member.diff, _same)),
             ("abstract", change_key(member.diff, abstraction(member.identity)))]
        for key in keys:
            other = first.setdefault(key, index)
            if other != index:
                sets.union(index, other)
    components: dict[int, list[Member]] = defaultdict(list)
    for index, member in enumerate(members):
        components[sets.find(index)].append(member)
    parts = list(components.values())
    if not exact:
        parts = _merge_per_node(parts)
    return [_grouped(sorted(part, key=lambda m: names.parse(m.name)), exact) for part in parts]


# Grouping levels whose values may explain why two groups' changes differ.
_LEVELS = ("node.cluster", "node.product", "node.cls")


def _merge_per_node(parts: list[list[Member]]) -> list[list[Member]]:
    """Groups whose changes have the same shape make one group when what tells them apart
    is not a cluster, product or class: their change is the same, its value differs per
    node (`differs per node in`). A value set per cluster stays one group per cluster."""
    by_shape: dict[tuple[object, ...], list[list[Member]]] = defaultdict(list)
    for part in parts:
        first = part[0]
        by_shape[_shape(first.diff, abstraction(first.identity))].append(part)
    merged: list[list[Member]] = []
    for similar in by_shape.values():
        if len(similar) == 1 or any(_aligned(similar, level) for level in _LEVELS):
            merged += similar
        else:
            merged.append([member for part in similar for member in part])
    return merged


def _aligned(parts: list[list[Member]], level: str) -> bool:
    """Each part lies within one value of `level`, and the parts do not all share it."""
    values = []
    for part in parts:
        found = {dict(m.identity)[level] for m in part}
        if len(found) > 1:
            return False
        values.append(found.pop())
    return len(set(values)) > 1


def _grouped(members: list[Member], exact: bool) -> Grouped:
    digests = {m.name: digest(m.diff) for m in members}
    rep = members[0]
    if exact or len(members) == 1:
        return Grouped(tuple(m.name for m in members), rep.diff, (), (), digests)
    values: dict[str, set[str]] = defaultdict(set)
    for member in members:
        for field, value in member.identity:
            values[field].add(value)
    differing = {field for field, found in values.items() if len(found) > 1}
    marked_used: set[str] = set()
    varies: list[str] = []
    files = []
    for index, change in enumerate(rep.diff.files):
        others = [m.diff.files[index] for m in members]
        new_diff, used, varied = _represent(change, others, members, differing)
        marked_used |= used
        path = _mark(change.path, [c.path for c in others], rep.identity, differing, marked_used)
        if varied or len({c.note for c in others}) > 1:
            varies.append(path)
        note = change.note if len({c.note for c in others}) == 1 else \
            f"{change.note} ({PER_NODE_WORDS})"
        files.append(change.model_copy(update={"diff": new_diff, "path": path, "note": note}))
    actions = []
    for index, action in enumerate(rep.diff.actions):
        others_a = [m.diff.actions[index] for m in members]
        if len({a.model_dump_json() for a in others_a}) == 1:
            actions.append(action)
            continue
        f = abstraction(rep.identity, differing)
        marked = ActionChange.model_validate_json(f(action.model_dump_json()))
        abstracted = {abstraction(m.identity, differing)(a.model_dump_json())
                      for m, a in zip(members, others_a, strict=True)}
        marked_used |= _fields_in(marked.model_dump_json())
        if len(abstracted) > 1:
            varies.append(marked.action)
        actions.append(marked)
    changes = rep.diff.model_copy(update={"files": tuple(files), "actions": tuple(actions)})
    return Grouped(tuple(m.name for m in members), changes,
                   tuple(sorted(marked_used)), tuple(varies), digests)


def _fields_in(text: str) -> set[str]:
    return {token[1:-1] for token in re.findall(r"⟨[a-z_.A-Z0-9-]+⟩", text)}


def _mark(text: str, texts: list[str], identity: Identity, differing: set[str],
          used: set[str]) -> str:
    """`text` with the differing identity fields marked, when it is not the same for all."""
    if len(set(texts)) == 1:
        return text
    marked = abstraction(identity, differing)(text)
    used |= _fields_in(marked)
    return marked


def _represent(change: FileChange, others: list[FileChange], members: list[Member],
               differing: set[str]) -> tuple[str | None, set[str], bool]:
    """The representative diff of one file, the fields it marks, and whether its +/-
    lines differ per node beyond identity."""
    if change.diff is None:
        return None, set(), False
    rep = members[0]
    exact = {changed_lines(c.diff) for c in others}
    # Context and headers: mark identity, but not a bare one-digit number (too common).
    context_fields = differing - {"node.number"}
    mark_context = abstraction(rep.identity, context_fields)
    mark_changes = abstraction(rep.identity, differing)
    varied = False
    masked: list[str] | None = None
    if len(exact) > 1:
        abstracted = [[abstraction(m.identity, differing)(line) for line in changed_lines(c.diff)]
                      for m, c in zip(members, others, strict=True)]
        if len({tuple(a) for a in abstracted}) > 1:
            varied = True
            masked = _mask(abstracted)
    out: list[str] = []
    changed_index = 0
    in_hunks = False
    for line in change.diff.splitlines():
        if line.startswith("@@"):
            in_hunks = True
            out.append(line)
        elif in_hunks and line[:1] in ("+", "-"):
            if masked is not None:
                out.append(masked[changed_index])
            elif len(exact) > 1:
                out.append(mark_changes(line))
            else:
                out.append(line)
            changed_index += 1
        else:
            out.append(mark_context(line))
    text = "\n".join(out) + "\n"
    return text, _fields_in(text) - _fields_in(change.diff), varied


def _mask(variants: list[list[str]]) -> list[str]:
    """The first variant's lines, with each run of words that differs between variants
    written `⟨per node: a, b, c, …⟩` (its first values); whole lines are kept when the
    variants do not line up word for word."""
    first = variants[0]
    if any(len(v) != len(first) for v in variants):
        return first
    out = []
    for index, line in enumerate(first):
        split = [_TOKENS.findall(v[index]) for v in variants]
        if any(len(s) != len(split[0]) for s in split):
            out.append(line)
            continue
        differs = [any(s[p] != split[0][p] for s in split) for p in range(len(split[0]))]
        text, position = "", 0
        while position < len(differs):
            if not differs[position]:
                text += split[0][position]
                position += 1
                continue
            end = position
            while end < len(differs) and differs[end]:
                end += 1
            seen = list(dict.fromkeys("".join(s[position:end]) for s in split))
            shown = ", ".join(seen[:_EXAMPLES]) + (", …" if len(seen) > _EXAMPLES else "")
            text += f"⟨{PER_NODE_WORDS}: {shown}⟩"
            position = end
        out.append(text)
    return out
