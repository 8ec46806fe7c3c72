"""Which encrypted variables a node's templates read: exactly what it must be able to
decrypt, and so who a ciphertext's recipients are (`secrets.audience`)."""

from __future__ import annotations

from reconciler.compile.inventory import TEMPLATES_DIR
from reconciler.compile.nodeconfig import Action, FileAction, NodeConfig, TreeAction
from reconciler.render.renderer import Renderer, tree_entries
from reconciler.render.unseal import sealed_variables
from reconciler.secrets.sealed import Sealed


def templates_of(renderer: Renderer, node: NodeConfig) -> list[str]:
    """Every template (relative to templates/) the node's file and tree actions render."""
    return [name for action in node.actions for name in action_templates(renderer, action)]


def action_templates(renderer: Renderer, action: Action) -> list[str]:
    """The templates (relative to templates/) a file or tree action renders."""
    if isinstance(action, FileAction) and action.ensure == "present" and action.template:
        return [action.template]
    snapshot = renderer.fleet.snapshot
    if isinstance(action, TreeAction) and snapshot.is_dir(f"{TEMPLATES_DIR}/{action.source}"):
        return [f"{action.source}/{rel}" for rel in tree_entries(snapshot, action.source)
                if rel.endswith(".j2")]
    return []


def used_sealed(renderer: Renderer, node: NodeConfig) -> dict[str, Sealed]:
    """The encrypted variables the node's templates read: exactly what it must be able to
    decrypt. A template that includes another by a computed name could read any, so it
    counts as reading them all. A template that does not load or parse raises its
    located ConfigError: what it reads is unknown, so the node may neither be given a
    secret for it nor lose one."""
    sealed = sealed_variables(node)
    if not sealed:
        return {}
    wanted: set[str] = set()
    for name in templates_of(renderer, node):
        names, dynamic = renderer.referenced(name, node.name)
        if dynamic:
            return sealed
        wanted |= names
    return {name: value for name, value in sealed.items() if name in wanted}
