"""The desired state of one node at one commit: its configuration compiled and its files
rendered, with the facts it was rendered with. The compiler and the template engine are
loaded only by what compiles and renders: a run that plans from the desired state the
settled run kept (record/desired.py) loads neither."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.compile.nodeconfig import NodeConfig, SymlinkAction
from reconciler.errors import ConfigError, Problem
from reconciler.render.budget import Budget, render_bounded
from reconciler.render.rendered import RenderedFile
from reconciler.statedir import AGE_IDENTITY

if TYPE_CHECKING:
    from reconciler.compile.inventory import Fleet
    from reconciler.facts.model import Facts
    from reconciler.render.renderer import Renderer
    from reconciler.source.snapshot import Snapshot


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Desired:
    """The desired state of one node at one commit: compiled and rendered, with the
    facts it was rendered with (what the node's report says it is)."""

    node: NodeConfig
    rendered: dict[str, list[RenderedFile]]
    snapshot: Snapshot  # the config it was compiled from
    facts: Facts | None = None

    def files(self) -> Iterable[RenderedFile]:
        return (item for items in self.rendered.values() for item in items)

    def paths(self) -> list[str]:
        """The node paths written through a temp name: rendered files and symlinks."""
        links = [a.path for a in self.node.actions if isinstance(a, SymlinkAction)]
        return [item.path for item in self.files()] + links


def desire(
    fleet: Fleet, node_name: str, renderer: Renderer | None = None,
    bytecode_dir: str | None = None, facts: Facts | None = None,
    identity: str = AGE_IDENTITY,
) -> Desired:
    """Compile and render one node with its `facts`, refusing the whole commit on any
    problem; the encrypted variables its templates read are decrypted with its age
    `identity`."""
    from reconciler.compile.compiler import compile_node
    from reconciler.render.renderer import Renderer
    from reconciler.secrets.unseal import IdentityUnsealer

    node = compile_node(fleet, node_name)
    renderer = renderer or Renderer(fleet, bytecode_dir,
                                    {node_name: facts} if facts is not None else None,
                                    IdentityUnsealer(identity))
    return rendered(fleet, node, renderer, facts)


def rendered(
    fleet: Fleet, node: NodeConfig, renderer: Renderer, facts: Facts | None = None,
    budget: Budget | None = None, should_stop: Callable[[], bool] = _never,
) -> Desired:
    """Render a compiled node's files with its `facts` (the renderer's), refusing the
    whole commit on any template problem, and any file that needs facts the renderer
    does not have. With a `budget`, in a child process held to it (render/budget.py)."""
    if budget is not None:
        files, problems = render_bounded(renderer, node, budget, should_stop)
    else:
        from reconciler.render.renderer import render_node

        files, problems = render_node(renderer, node)
        renderer.save_cache()
    problems += [Problem(f"{item.path} depends on facts ({', '.join(item.unknown_facts)}), "
                         "which this run did not gather", item.action.origin.path,
                         item.action.origin.line, node.name, item.action.id)
                 for item in files if item.unknown_facts]
    if problems:
        raise ConfigError(problems)
    by_action: dict[str, list[RenderedFile]] = {}
    for item in files:
        by_action.setdefault(item.action.id, []).append(item)
    return Desired(node, by_action, fleet.snapshot, facts)
