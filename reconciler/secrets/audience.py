"""Who needs each ciphertext: the nodes whose compiled configuration resolves that
encrypted value (from that very layer) and whose templates read it.

A product-wide `db_password` is resolved by the product's proxies too, but only the
app servers and databases render it: they alone are its recipients.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.compile.compiler import compile_node
from reconciler.compile.inventory import Fleet, Layer, VarDecl
from reconciler.errors import ConfigError, Problem
from reconciler.render.renderer import Renderer
from reconciler.render.usage import used_sealed
from reconciler.secrets.sealed import Sealed


@dataclass(frozen=True)
class Declaration:
    """One <var> of the repo, in the layer that declares it; `slug` names the layer in
    ciphertext file names (`secrets/<var>/<slug>.age`)."""

    layer: Layer
    decl: VarDecl
    slug: str

    @property
    def sealed(self) -> Sealed | None:
        return self.decl.value if isinstance(self.decl.value, Sealed) else None


def selector_slug(selector: dict[str, str]) -> str:
    """`class=app,product=tickets`; `defaults` for no selector at all."""
    return ",".join(f"{k}={v}" for k, v in selector.items()) or "defaults"


def declarations(fleet: Fleet) -> Iterator[Declaration]:
    """Every variable declaration of the fleet, each once, in file order per layer."""
    layers: list[tuple[Layer, str]] = [(fleet.defaults, "defaults")]
    layers += [(fleet.classes[name].layer, f"class-file={name}") for name in sorted(fleet.classes)]
    layers += [(block.layer, selector_slug(block.selector) if block.selector else "vars")
               for block in fleet.blocks]
    for fqdn, node in fleet.nodes.items():
        if node.range_layer is not None:
            name = node.name
            layers.append((node.range_layer, f"nodes={name.cls}.{name.product}.{name.cluster}"))
        if node.node_layer is not None:
            layers.append((node.node_layer, f"node={fqdn}"))
    seen: set[int] = set()
    for layer, slug in layers:
        if id(layer) in seen:  # a <nodes> range is one layer shared by its nodes
            continue
        seen.add(id(layer))
        for decl in layer.decls:
            yield Declaration(layer, decl, slug)


def audiences(fleet: Fleet) -> dict[str, set[str]]:
    """Ciphertext path → the nodes that need it. Raises ConfigError when a node does not
    compile (validate tells the whole story)."""
    renderer = Renderer(fleet)
    found: dict[str, set[str]] = {}
    problems: list[Problem] = []
    for name in fleet.node_names():
        try:
            node = compile_node(fleet, name)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for sealed in used_sealed(renderer, node).values():
            found.setdefault(sealed.path, set()).add(name)
    if problems:
        raise ConfigError(problems)
    return found
