"""Encrypted variables at render time: which ones a node's templates read, and how their
values are obtained — decrypted with the node's identity on the node, a placeholder in
`validate`, `plan` and `render`, where no one decrypts.

A template sees an encrypted variable only if it reads it by name (its own text or what
it includes); any other encrypted value is left out of its context, so nothing is
decrypted that no file needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import jinja2

from reconciler.compile.inventory import TEMPLATES_DIR
from reconciler.compile.nodeconfig import FileAction, NodeConfig, TreeAction, Variable
from reconciler.errors import ConfigError
from reconciler.secrets.sealed import Sealed

if TYPE_CHECKING:
    from reconciler.render.renderer import Renderer


class Unsealer(Protocol):
    """Turns a node's encrypted variable into the text its templates see."""

    def unseal(self, node: str, variable: Variable, sealed: Sealed) -> str: ...


class Placeholders:
    """No decryption: each encrypted value renders as `ENCRYPTED-<value id>`, which
    changes exactly when the value may have (validate, plan and render use it)."""

    def unseal(self, node: str, variable: Variable, sealed: Sealed) -> str:
        return sealed.placeholder


def sealed_variables(node: NodeConfig) -> dict[str, Sealed]:
    """The node's variables whose winning value is encrypted."""
    return {name: var.value for name, var in node.variables.items()
            if isinstance(var.value, Sealed)}


def templates_of(renderer: Renderer, node: NodeConfig) -> list[str]:
    """Every template (relative to templates/) the node's file and tree actions render."""
    from reconciler.render.renderer import tree_entries

    found: list[str] = []
    snapshot = renderer.fleet.snapshot
    for action in node.actions:
        if isinstance(action, FileAction) and action.ensure == "present" and action.template:
            found.append(action.template)
        elif isinstance(action, TreeAction) and snapshot.is_dir(f"{TEMPLATES_DIR}/{action.source}"):
            found += [f"{action.source}/{rel}" for rel in tree_entries(snapshot, action.source)
                      if rel.endswith(".j2")]
    return found


def used_sealed(renderer: Renderer, node: NodeConfig) -> dict[str, Sealed]:
    """The encrypted variables the node's templates read: exactly what it must be able to
    decrypt. A template that includes another by a computed name could read any, so it
    counts as reading them all. Templates that do not load are skipped (render reports
    them)."""
    sealed = sealed_variables(node)
    if not sealed:
        return {}
    wanted: set[str] = set()
    for name in templates_of(renderer, node):
        try:
            names, dynamic = renderer.referenced(name)
        except (ConfigError, jinja2.TemplateError):
            continue
        if dynamic:
            return sealed
        wanted |= names
    return {name: value for name, value in sealed.items() if name in wanted}
