"""A class chain's actions: merged general → specific, references and cycles checked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.compile.edits import nested_path_conflicts, whole_file_conflicts
from reconciler.compile.nodeconfig import PATH_KINDS, Action
from reconciler.errors import ConfigError, Problem


def path_key(action: Action) -> str | None:
    """The node path of a filesystem action (canonical: checked at parse), else None."""
    return action.path if action.kind in PATH_KINDS else None  # type: ignore[union-attr]


def merge_actions(chain: Iterable[Sequence[Action]]) -> tuple[Action, ...]:
    """Walk the chain's action lists general → specific; a child's action replaces the
    parent's on the same path (or id), keeping the parent's position; then check
    references and cycles."""
    ordered: dict[str, Action] = {}
    for actions_of_class in chain:
        for action in actions_of_class:
            key = path_key(action) or action.id
            ordered[key] = action
    actions = tuple(ordered.values())
    problems: list[Problem] = []
    ids = {a.id for a in actions}
    for action in actions:
        for ref in action.requires:
            if ref not in ids:
                problems.append(Problem(f"requires unknown action {ref!r}",
                                        action.origin.path, action.origin.line,
                                        action=action.id))
        for notify in action.notify:
            if notify.target not in ids:
                problems.append(Problem(f"notifies unknown action {notify.target!r}",
                                        action.origin.path, action.origin.line,
                                        action=action.id))
    problems.extend(whole_file_conflicts(actions))
    problems.extend(nested_path_conflicts(actions))
    if not problems:
        cycle = _find_cycle(actions)
        if cycle:
            culprit = next(a for a in actions if a.id == cycle[0])
            problems.append(Problem("dependency cycle: " + " -> ".join(cycle),
                                    culprit.origin.path, culprit.origin.line))
    if problems:
        raise ConfigError(problems)
    return actions


def _find_cycle(actions: tuple[Action, ...]) -> list[str] | None:
    """A cycle in requires/notify edges (both mean 'before'), or None."""
    edges: dict[str, list[str]] = {a.id: [] for a in actions}
    for action in actions:
        for ref in action.requires:
            edges[ref].append(action.id)
        for notify in action.notify:
            edges[action.id].append(notify.target)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in edges:
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None
