"""A node's actions: each class level of its chain (mixins, then the class's own, with
for-each declarations expanded over the node's variables), merged general → specific.

Within a level, the class's own action wins over its mixins'; two mixins declaring
the same path or id are an error at the `<include>` line, unless the class including
both declares it too. Across levels a
more specific class replaces a general one's action (merge_actions). Classes without
for-each declarations resolve once per fleet; the others once per distinct value of
their for-each variables, so nodes with the same values share one tuple of actions.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.compile import repofiles
from reconciler.compile.chain import merge_actions, path_key
from reconciler.compile.expand import expand
from reconciler.compile.inventory import Fleet, Pattern
from reconciler.compile.mixins import Entry, level
from reconciler.compile.nodeconfig import Action, Variable
from reconciler.errors import ConfigError, Problem


def patterns_of(fleet: Fleet, cls: str) -> list[Pattern]:
    """The for-each declarations a node of class `cls` expands, through its whole chain."""
    return [e.item for c in fleet.chain(cls) for e in level(fleet, c).entries
            if isinstance(e.item, Pattern)]


def check_class(fleet: Fleet, cls: str, problems: list[Problem]) -> None:
    """What can be checked of a class's actions before any node: mixin conflicts, and
    references, unless for-each declarations make its ids known only per node, or the
    class is only ever included (its references may name its includers' actions)."""
    try:
        if patterns_of(fleet, cls) or _only_included(fleet, cls):
            for name in fleet.chain(cls):
                _merge_level(fleet, name, _concrete(fleet, name, None, problems), problems)
        else:
            actions(fleet, cls, {})
    except ConfigError as exc:
        problems.extend(exc.problems)


def _only_included(fleet: Fleet, cls: str) -> bool:
    """Whether `cls` is a mixin and nothing else: no node, no child class."""
    return any(i.cls == cls for d in fleet.classes.values() for i in d.includes) \
        and not any(d.inherits == cls for d in fleet.classes.values()) \
        and not fleet.node_names(cls)


def actions(fleet: Fleet, cls: str, variables: Mapping[str, Variable]) -> tuple[Action, ...]:
    """The actions of a node of class `cls` with these variables (cached per fleet by the
    values its for-each declarations read). Raises ConfigError naming every problem."""
    wanted = fleet._for_each.get(cls)
    if wanted is None:  # a walk of the class's chain: once per class, not once per node
        wanted = fleet._for_each[cls] = tuple(sorted({p.variable
                                                      for p in patterns_of(fleet, cls)}))
    found = [variables.get(name) for name in wanted]
    # Variables are shared between nodes with the same layers (compiler.py): their ids
    # identify values, and the fleet keeps them alive.
    key = (cls, tuple(id(v) for v in found))
    cached = fleet._actions.get(key)
    if cached is not None:
        return cached
    values = {name: v.value for name, v in zip(wanted, found, strict=True) if v is not None}
    problems: list[Problem] = []
    levels = [_merge_level(fleet, name, _concrete(fleet, name, values, problems), problems)
              for name in fleet.chain(cls)]
    if problems:
        raise ConfigError(problems)
    resolved = merge_actions(levels)
    fleet._actions[key] = resolved
    return resolved


def _concrete(
    fleet: Fleet, cls: str, values: Mapping[str, object] | None, problems: list[Problem]
) -> list[Action]:
    """The actions of one level, patterns expanded with `values` (left out when None),
    each carrying the include path it came through."""
    found: list[Action] = []
    for entry in level(fleet, cls).entries:
        if isinstance(entry.item, Pattern):
            if values is not None:
                expanded = expand(entry.item, values.get(entry.item.variable), problems)
                found += [_via(a, entry)
                          for a in repofiles.resolve(fleet.snapshot, expanded, problems)]
        else:
            found.append(_via(entry.item, entry))
    return found


def _via(action: Action, entry: Entry) -> Action:
    return action.model_copy(update={"via": entry.via}) if entry.via else action


def _merge_level(
    fleet: Fleet, cls: str, found: list[Action], problems: list[Problem]
) -> list[Action]:
    """One class's level, one action per path or id (see `_winner`), in the order of
    their first declaration."""
    candidates: dict[str, list[Action]] = {}
    for action in found:
        candidates.setdefault(path_key(action) or action.id, []).append(action)
    return [_winner(fleet, cls, group, problems) for group in candidates.values()]


def _winner(fleet: Fleet, cls: str, group: list[Action], problems: list[Problem]) -> Action:
    """Of the actions declared for one path or id in `cls`'s level, the one that counts.

    Each came down an include path (`cls`, mixin, mixin of that mixin…, its declaring
    class). Walking those paths from `cls`, the first class that declares the action
    itself wins over everything included below it; where the paths split between two
    mixins of one class without that class deciding, the declarations conflict (the
    same declaration reached twice is one)."""
    if len({(a.origin, a.item) for a in group}) == 1:
        return group[0]
    paths = [(*a.via, a.declared_in) if a.via else (cls,) for a in group]
    depth = 1
    while True:
        decider = paths[0][depth - 1]
        direct = [a for a, p in zip(group, paths, strict=True) if len(p) == depth]
        if len(direct) > 1:
            twice = direct[1]
            problems.append(Problem(f"{twice.id} is declared twice in class {decider!r} (also "
                                    f"at {direct[0].origin})", twice.origin.path,
                                    twice.origin.line))
        if direct:
            return direct[0]
        branches = list(dict.fromkeys(p[depth] for p in paths))
        if len(branches) > 1:
            first = group[[p[depth] for p in paths].index(branches[0])]
            other = group[[p[depth] for p in paths].index(branches[1])]
            include = next(i for i in fleet.classes[decider].includes if i.cls == branches[1])
            problems.append(Problem(
                f"{other.id} is declared by mixins {first.declared_in!r} (at {first.origin}) "
                f"and {other.declared_in!r} (at {other.origin}): declare it in class "
                f"{decider!r} to choose", include.origin.path, include.origin.line))
            return first
        depth += 1
