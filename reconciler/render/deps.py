"""Which repo files a node's rendered files and compiled config were made from.

A fleet plan records these per node (review/records.py) so that the next plan re-renders
only the nodes and files whose dependencies changed. Dependencies are repo paths; one
ending in `/` stands for everything under it (a tree's listing, or every template when
a template includes one by a computed name); `@inventory` means the template lists the
fleet's nodes with `nodes()`. What cannot be known names more, never less.
"""

from __future__ import annotations

from collections.abc import Iterable

import jinja2

from reconciler.compile.inventory import TEMPLATES_DIR, Fleet
from reconciler.compile.mixins import level
from reconciler.compile.nodeconfig import (
    Action,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
    FileAction,
    NodeConfig,
    TreeAction,
)
from reconciler.render.renderer import Renderer, tree_entries

EVERY_TEMPLATE = f"{TEMPLATES_DIR}/"
INVENTORY = "@inventory"  # the fleet's node names, as `nodes()` lists them


class Dependencies:
    """Dependencies of one revision's nodes, with each template's closure computed once."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._closures: dict[str, frozenset[str]] = {}
        # Actions are shared by the nodes of a class (each node has its own tuple of
        # them): each is looked at once, and kept alive here so that its id stays its own.
        self._actions: dict[int, tuple[object, frozenset[str]]] = {}
        self._compiled: dict[tuple[tuple[int, ...], tuple[str, ...]],
                             tuple[object, frozenset[str]]] = {}

    def template(self, name: str) -> frozenset[str]:
        """Template `name` (relative to templates/) and every template it includes,
        imports or extends, as repo paths; every template (and the inventory) when one
        is named by a computed expression; the inventory when one calls `nodes()`."""
        found = self._closures.get(name)
        if found is not None:
            return found
        paths: set[str] = set()
        pending, seen = [name], {name}
        while pending:
            current = pending.pop()
            paths.add(f"{TEMPLATES_DIR}/{current}")
            try:
                source = self.renderer.source(current)
            except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError):
                continue  # the render fails or will, and the path is named above
            if source.lists_nodes:
                paths.add(INVENTORY)
            for other in source.includes:
                if other is None:
                    paths |= {EVERY_TEMPLATE, INVENTORY}
                elif other not in seen:
                    seen.add(other)
                    pending.append(other)
        found = frozenset(paths)
        self._closures[name] = found
        return found

    def action(self, action: FileAction | TreeAction) -> frozenset[str]:
        """What the content of a file or tree action's files is made from."""
        cached = self._actions.get(id(action))
        if cached is not None and cached[0] is action:
            return cached[1]
        found = self._action(action)
        self._actions[id(action)] = (action, found)
        return found

    def _action(self, action: FileAction | TreeAction) -> frozenset[str]:
        if isinstance(action, TreeAction):
            found = {f"{TEMPLATES_DIR}/{action.source}/"}
            for rel in _entries(self.renderer, action.source):
                if rel.endswith(".j2"):
                    found |= self.template(f"{action.source}/{rel}")
            return frozenset(found)
        if action.ensure == "absent":
            return frozenset()
        if action.template is not None:
            return self.template(action.template)
        if action.source is not None:
            return frozenset({f"{TEMPLATES_DIR}/{action.source}"})
        return frozenset()

    def compiled(self, fleet: Fleet, node: NodeConfig) -> frozenset[str]:
        """Repo files the node's compiled config was made from besides fleet.xml: the
        class files of its chain and mixins, and the files its actions carry (keys,
        block sources, keyrings)."""
        key = (tuple(map(id, node.actions)), node.class_chain)
        cached = self._compiled.get(key)
        if cached is not None:
            return cached[1]
        paths = {fleet.classes[source.cls].path
                 for cls in node.class_chain for source in level(fleet, cls).sources}
        for action in node.actions:
            paths |= set(_carried(action))
        found = frozenset(paths)
        self._compiled[key] = (node.actions, found)
        return found


def _entries(renderer: Renderer, source: str) -> list[str]:
    snapshot = renderer.fleet.snapshot
    if not snapshot.is_dir(f"{TEMPLATES_DIR}/{source}"):
        return []
    return tree_entries(snapshot, source)


def _carried(action: Action) -> Iterable[str]:
    """Repo files an action's compiled value was read from (compile/repofiles.py)."""
    match action:
        case AuthorizedKeysAction():
            return [f"{TEMPLATES_DIR}/{rel}" for rel in action.key_sources]
        case BlockAction() if action.source is not None:
            return [f"{TEMPLATES_DIR}/{action.source}"]
        case AptSourceAction() if action.key is not None:
            return [f"{TEMPLATES_DIR}/{action.key}"]
    return []
