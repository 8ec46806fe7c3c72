"""Warnings: what is valid but almost certainly a typo — a `<vars>` block that selects no
node, a lone `<node>` whose name is one letter off a node of a range, a variable that no
template or `for-each` reads. `validate` prints them; `--strict` (the hooks) refuses them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from reconciler.compile.inventory import Fleet, Layer
from reconciler.compile.suggest import did_you_mean, nearest
from reconciler.errors import Problem


def warnings(fleet: Fleet, read: frozenset[str] | None) -> list[Problem]:
    """Every warning about `fleet`; `read` is the variables its templates read (None: a
    template includes another by a computed name, so any variable may be read)."""
    found = list(unmatched_selectors(fleet)) + list(lone_nodes(fleet))
    if read is not None:
        found += unread_variables(fleet, read)
    return found


def unmatched_selectors(fleet: Fleet) -> Iterator[Problem]:
    """`<vars>` blocks that no node of the fleet matches."""
    nodes = [decl.name for decl in fleet.nodes.values()]
    for block in fleet.blocks:
        if not block.selector or block.origin is None:
            continue
        if not any(block.matches(n.cls, n.product, n.cluster) for n in nodes):
            selector = " ".join(f'{k}="{v}"' for k, v in block.selector.items())
            yield Problem(f"warning: <vars {selector}> matches no node", block.origin.path,
                          block.origin.line)


def lone_nodes(fleet: Fleet) -> Iterator[Problem]:
    """`<node>`s that belong to no range and whose name is close to one that does: a
    misspelt name would otherwise declare a new node and leave the real one unconfigured."""
    ranged = [name for name, decl in fleet.nodes.items() if decl.range_layer is not None]
    for name, decl in fleet.nodes.items():
        if decl.range_layer is not None:
            continue
        close = nearest(name, ranged)
        if close is not None:
            yield Problem(f"warning: node {name} belongs to no <nodes> range, so this declares "
                          f"a new node; did you mean {close!r}?", decl.origin.path,
                          decl.origin.line)


def unread_variables(fleet: Fleet, read: frozenset[str]) -> list[Problem]:
    """Variables set somewhere that no template and no `for-each` reads."""
    used = set(read) | {p.variable for c in fleet.classes.values() for p in c.patterns}
    found: list[Problem] = []
    seen: set[tuple[str, int]] = set()
    for layer in _layers(fleet):
        for decl in layer.decls:
            where = (decl.origin.path, decl.origin.line)
            if decl.name in used or where in seen:
                continue
            seen.add(where)
            found.append(Problem(f"warning: variable {decl.name!r} is set here but no template "
                                 f"or for-each reads it{did_you_mean(decl.name, used)}",
                                 decl.origin.path, decl.origin.line))
    return found


def _layers(fleet: Fleet) -> Iterable[Layer]:
    yield fleet.defaults
    yield from (c.layer for c in fleet.classes.values())
    yield from (b.layer for b in fleet.blocks)
    for decl in fleet.nodes.values():
        if decl.range_layer is not None:
            yield decl.range_layer
        if decl.node_layer is not None:
            yield decl.node_layer


