"""The fleet as parsed: variable layers, <vars> blocks, node and class declarations.

A `Fleet` is the whole config repo at one revision, parsed and checked once; nodes are
compiled from it (compiler.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lxml import etree

from reconciler.compile import names
from reconciler.compile.guards import Guard
from reconciler.compile.layout import CLASSES_DIR as CLASSES_DIR
from reconciler.compile.layout import FLEET_FILE as FLEET_FILE
from reconciler.compile.layout import TEMPLATES_DIR as TEMPLATES_DIR
from reconciler.compile.nodeconfig import (
    Action,
    HealthCheck,
    NodeConfig,
    Origin,
    Policy,
    Provenance,
    Variable,
)
from reconciler.compile.xmlload import XmlDoc
from reconciler.rollout.model import Rollout
from reconciler.source.snapshot import Snapshot

# A policy interval or splay, or a command timeout, longer than this is a typo (and
# would overflow a sleep or a wait).
MAX_POLICY_SECONDS = 30 * 86400

_SELECTOR_RANK = {"class": 0, "cluster": 1, "product": 2}


@dataclass(frozen=True)
class VarDecl:
    name: str
    value: Any
    origin: Origin
    secret: bool = False


@dataclass
class Layer:
    """A set of variable declarations that apply together, e.g. one <vars> block."""

    label: str
    decls: list[VarDecl] = field(default_factory=list)
    _provenance: list[tuple[str, Provenance]] | None = None

    def provenance(self) -> list[tuple[str, Provenance]]:
        """(name, provenance) per declaration, built once."""
        if self._provenance is None:
            self._provenance = [
                (d.name, Provenance.model_construct(layer=self.label, origin=d.origin,
                                                    value=d.value, secret=d.secret))
                for d in self.decls
            ]
        return self._provenance


@dataclass
class Block:
    """A `<vars>` block and the selector that picks its nodes."""

    selector: dict[str, str]
    layer: Layer
    order: int
    origin: Origin | None = None  # the <vars> element

    def matches(self, cls: str, product: str, cluster: str) -> bool:
        wanted = {"class": cls, "product": product, "cluster": cluster}
        return all(wanted[key] == value for key, value in self.selector.items())

    @property
    def specificity(self) -> tuple[int, int, int]:
        rank = min(_SELECTOR_RANK[k] for k in self.selector) if len(self.selector) == 1 else 0
        return (len(self.selector), rank, self.order)


@dataclass
class NodeDecl:
    name: names.NodeName
    origin: Origin
    range_layer: Layer | None = None
    range_policy: dict[str, Any] = field(default_factory=dict)
    node_layer: Layer | None = None
    node_policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Include:
    """`<include class="…"/>`: a mixin of the class that declares it."""

    cls: str
    origin: Origin


@dataclass(frozen=True, eq=False)
class Pattern:
    """A `for-each` action declaration, expanded per node (expand.py)."""

    doc: XmlDoc
    element: etree._Element
    variable: str  # for-each=
    name: str  # as=
    position: int  # how many actions of its class are declared before it
    origin: Origin
    declared_in: str
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClassDecl:
    name: str
    path: str
    origin: Origin
    inherits: str | None
    policy: dict[str, Any]
    layer: Layer
    actions: list[Action]
    patterns: list[Pattern] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    health: list[HealthCheck] = field(default_factory=list)


@dataclass
class Fleet:
    """The whole repo at one revision, parsed and checked; compile nodes from it."""

    snapshot: Snapshot
    domain: str
    defaults: Layer
    default_policy: dict[str, Any]
    blocks: list[Block]
    nodes: dict[str, NodeDecl]
    classes: dict[str, ClassDecl]
    # <fleet products= clusters=>: "product"/"cluster" -> the names declared (absent: any)
    declared: dict[str, frozenset[str]] = field(default_factory=dict)
    rollout: Rollout | None = None  # fleet.xml's <rollout>, its waves resolved
    guards: tuple[Guard, ...] = ()  # fleet.xml's <guard> rails (compile/guards.py)
    _chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Caches of resolve.py and mixins.py: actions by class (and by the values of the
    # for-each variables), each class's own level with its mixins, the variables its
    # for-each declarations read.
    _actions: dict[tuple[str, tuple[int, ...]], tuple[Action, ...]] = field(default_factory=dict)
    _levels: dict[str, Any] = field(default_factory=dict)
    _for_each: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _variables: dict[tuple[str, tuple[int, ...]], Variable] = field(default_factory=dict)
    # compiler.py's: the layers of a class, product and cluster; variables by the layers
    # that set them; action tuples (kept alive in _actions) that no guard refuses;
    # policies by their (scalar) values.
    _layers: dict[tuple[str, str, str], list[Layer]] = field(default_factory=dict)
    _merged: dict[tuple[int, ...], dict[str, Variable]] = field(default_factory=dict)
    _unguarded: set[int] = field(default_factory=set)
    _policies: dict[tuple[tuple[str, Any], ...], Policy] = field(default_factory=dict)
    # A validated config by the class chain (which decides its health checks), actions
    # and policy it holds (which it keeps alive, so their ids stay theirs): the nodes
    # that share them copy it.
    _configs: dict[tuple[object, ...], NodeConfig] = field(default_factory=dict)

    @property
    def revision(self) -> str | None:
        return self.snapshot.revision

    def node_names(
        self, cls: str | None = None, product: str | None = None, cluster: str | None = None
    ) -> list[str]:
        """Sorted fqdn names of the nodes matching every given filter."""
        if cls is not None and product is not None and cluster is not None:
            return list(self._groups.get((cls, product, cluster), ()))
        return [
            fqdn
            for (c, p, k), names in self._groups.items()
            if (cls is None or c == cls) and (product is None or p == product)
            and (cluster is None or k == cluster)
            for fqdn in names
        ]

    @cached_property
    def _groups(self) -> dict[tuple[str, str, str], list[str]]:
        """The names by class, product and cluster, sorted (the groups in that order, each
        by node number): a template's `nodes(...)` reads a few groups, not every node."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for fqdn, decl in sorted(self.nodes.items(), key=lambda item: (
                item[1].name.cls, item[1].name.product, item[1].name.cluster,
                item[1].name.number)):
            name = decl.name
            groups.setdefault((name.cls, name.product, name.cluster), []).append(fqdn)
        return groups

    def chain(self, cls: str) -> tuple[str, ...]:
        """The class chain, most general first (cycles were refused at load)."""
        if cls not in self._chains:
            chain: list[str] = []
            current: str | None = cls
            while current is not None:
                chain.append(current)
                current = self.classes[current].inherits
            self._chains[cls] = tuple(reversed(chain))
        return self._chains[cls]
