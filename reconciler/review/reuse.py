"""Which of a node's files render at the base exactly as at the head, so that a plan
comparing it at both revisions renders them once.

A file's content is made from its action (template, source or inline content, and the
action's own variables), the templates its template includes, imports or extends, the
node's identity, the variables those templates read by name (any, when one includes a
template by a computed name), its facts, and the fleet's node names (`nodes()`). When
none of these differ between the two revisions, the base's files are the head's: the
actions and variables are compared strictly (types and order too: `1` and `true`
render differently), the repo files through the paths the change touched and the
dependencies render/deps.py finds (which incremental plans trust as well). A file the
head could not render without the node's facts is always rendered at the base too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2

from reconciler.compile.nodeconfig import Action, FileAction, NodeConfig, TreeAction, Variable
from reconciler.errors import ConfigError
from reconciler.render.deps import Dependencies
from reconciler.render.renderer import RenderedFile
from reconciler.render.usage import action_templates
from reconciler.review.incremental import matches


def strictly_equal(a: Any, b: Any) -> bool:
    """Equal values of the same types, maps in the same order (as templates see them)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            type(ka) is type(kb) and ka == kb and strictly_equal(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(strictly_equal(x, y)
                                        for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Reuse:
    """Decides, node by node, what the base renders like the head, given the repo
    paths that differ between the revisions (with `@inventory` when the fleet's node
    names do). Each pair of actions, pair of variables and action's dependencies is
    looked at once; entries keep their objects alive, so the ids they are keyed by stay
    theirs."""

    def __init__(self, changed: frozenset[str]) -> None:
        self.changed = changed
        self._actions: dict[tuple[int, int], tuple[Action, Action, bool]] = {}
        self._variables: dict[tuple[int, int], tuple[Variable, Variable, bool]] = {}
        self._deps: dict[int, tuple[Action, bool]] = {}
        self._templates: dict[int, tuple[Action, list[str]]] = {}
        # What kept() and _differ() found, by the ids of the node's actions or variables
        # (the nodes of a class share their actions, those of a range their variables).
        self._kept: dict[tuple[object, ...], tuple[object, frozenset[str]]] = {}
        self._differs: dict[tuple[object, ...], tuple[object, frozenset[str]]] = {}

    def kept(self, base: NodeConfig, head: NodeConfig, head_files: Sequence[RenderedFile],
             head_deps: Dependencies) -> frozenset[str]:
        """The ids of the base's file and tree actions whose files are exactly the
        head's `head_files` of the same action (rendering them would give no problem)."""
        if base.name != head.name:
            return frozenset()
        differ = self._differ(base, head)
        undecided = frozenset(item.action.id for item in head_files if item.undecided)
        key = (id(base.actions), id(head.actions), id(head_deps), differ, undecided)
        cached = self._kept.get(key)
        if cached is not None:
            return cached[1]
        new = {a.id: a for a in head.actions if isinstance(a, FileAction | TreeAction)}
        found = frozenset(
            was.id for was in base.actions
            if (now := new.get(was.id)) is not None and was.id not in undecided
            and self._same_action(was, now) and not self._touched(now, head_deps)
            and not (differ and self._reads(now, differ, head_deps)))
        self._kept[key] = ((base.actions, head.actions, head_deps), found)
        return found

    def _differ(self, base: NodeConfig, head: NodeConfig) -> frozenset[str]:
        """The names of the variables whose values differ between two configs."""
        key = (tuple(base.variables), tuple(map(id, base.variables.values())),
               tuple(head.variables), tuple(map(id, head.variables.values())))
        cached = self._differs.get(key)
        if cached is not None:
            return cached[1]
        differ = frozenset(
            name for name in base.variables.keys() | head.variables.keys()
            if name not in base.variables or name not in head.variables
            or not self._same_variable(base.variables[name], head.variables[name]))
        self._differs[key] = ((tuple(base.variables.values()), tuple(head.variables.values())),
                              differ)
        return differ

    def _reads(self, action: FileAction | TreeAction, variables: frozenset[str],
               deps: Dependencies) -> bool:
        """Whether the templates of an action (with what they include or import) may
        read one of `variables`: by name, or any by a template included by a computed
        name, or one that does not load."""
        templates = self._templates.get(id(action))
        if templates is None:
            templates = self._templates[id(action)] = (action, action_templates(
                deps.renderer, action))
        for name in templates[1]:
            try:
                names, dynamic = deps.renderer.referenced(name)
            except (ConfigError, jinja2.TemplateError):
                return True
            if dynamic or not names.isdisjoint(variables):
                return True
        return False

    def _same_action(self, was: Action, now: Action) -> bool:
        key = (id(was), id(now))
        found = self._actions.get(key)
        if found is None:
            same = type(was) is type(now) and was == now and strictly_equal(was.vars, now.vars)
            found = self._actions[key] = (was, now, same)
        return found[2]

    def _same_variable(self, was: Variable, now: Variable) -> bool:
        key = (id(was), id(now))
        found = self._variables.get(key)
        if found is None:
            same = was.secret == now.secret and strictly_equal(was.value, now.value)
            found = self._variables[key] = (was, now, same)
        return found[2]

    def _touched(self, action: FileAction | TreeAction, deps: Dependencies) -> bool:
        found = self._deps.get(id(action))
        if found is None:
            touched = any(matches(dep, self.changed) for dep in deps.action(action))
            found = self._deps[id(action)] = (action, touched)
        return found[1]
