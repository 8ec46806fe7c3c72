"""`<rollout>` in fleet.xml → a `Rollout` with every wave's members, checked: unknown
nodes, classes, products and clusters, a node named by two waves, a wave name used
twice, a bad soak duration — each a problem at its file:line."""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from lxml import etree

from reconciler import durations
from reconciler.compile.inventory import Fleet
from reconciler.compile.xmlload import XmlDoc
from reconciler.errors import Problem
from reconciler.rollout.model import REST, Rollout, Wave

_SELECTORS = ("class", "product", "cluster")


def parse(doc: XmlDoc, fleet: Fleet, problems: list[Problem]) -> Rollout | None:
    """The fleet's rollout (None when fleet.xml declares none, or it has problems)."""
    found = list(doc.root.iterchildren("rollout"))
    if not found:
        return None
    element = found[0]
    for extra in found[1:]:
        problems.append(doc.problem(extra, f"a second <rollout> (the first is at line "
                                           f"{doc.origin(element).line}): a fleet has one "
                                           "rollout"))
    before = len(problems)
    soak = _soak(doc, element, problems)
    waves = _waves(doc, element, fleet, problems)
    if len(problems) > before or soak is None:
        return None
    return Rollout(soak, int(element.get("max-failures", "0")), waves, doc.origin(element))


def _soak(doc: XmlDoc, element: etree._Element, problems: list[Problem]) -> timedelta | None:
    raw = element.get("soak", "0")
    soak = durations.parse(raw)
    if soak is None:
        problems.append(doc.problem(element, f"soak {raw!r} is not a duration "
                                             f"({durations.EXAMPLES})"))
    return soak


def _waves(doc: XmlDoc, rollout: etree._Element, fleet: Fleet,
           problems: list[Problem]) -> tuple[Wave, ...]:
    """Every declared wave's members (each node in the first wave that selects it), then
    the nodes no wave selects as the implicit last wave."""
    named: dict[str, int] = {}
    explicit: dict[str, int] = {}  # node: the line of the <node> that first named it
    placed: dict[str, str] = {}  # node: its wave
    waves: list[Wave] = []
    for element in rollout.iterchildren("wave"):
        name = element.get("name", "")
        if name in named or name == REST:
            problems.append(doc.problem(element, f"wave {name!r} is declared twice (first "
                                                 f"at line {named.get(name)})"
                                        if name in named else f"{REST} is a reserved name"))
        named.setdefault(name, doc.origin(element).line)
        members = _members(doc, element, name, fleet, explicit, placed, problems)
        ordered = tuple(sorted(node for node in members if node not in placed))
        placed.update(dict.fromkeys(ordered, name))
        waves.append(Wave(name, doc.origin(element), ordered))
    rest = tuple(sorted(set(fleet.nodes) - set(placed)))
    if rest:
        waves.append(Wave(REST, None, rest))
    return tuple(waves)


def _members(doc: XmlDoc, element: etree._Element, name: str, fleet: Fleet,
             explicit: dict[str, int], placed: dict[str, str],
             problems: list[Problem]) -> list[str]:
    """The nodes one `<wave>` names or selects (before earlier waves take theirs)."""
    listed = list(element.iterchildren("node"))
    selector = {key: element.get(key) for key in _SELECTORS if element.get(key) is not None}
    percent = element.get("percent")
    if listed:
        if selector or percent is not None:
            problems.append(doc.problem(element, f"wave {name!r} both lists nodes and selects "
                                                 "them: use one or the other"))
        members = []
        for child in listed:
            node = child.get("name", "")
            if node not in fleet.nodes:
                problems.append(doc.problem(child, f"wave {name!r}: unknown node {node!r} "
                                                   "(not in this fleet)"))
            elif node in explicit:
                problems.append(doc.problem(child, f"wave {name!r}: node {node} is already in "
                                                   f"a wave (line {explicit[node]})"))
            elif node in placed:
                problems.append(doc.problem(child, f"wave {name!r}: node {node} is already in "
                                                   f"wave {placed[node]!r}, which selects it"))
            else:
                explicit[node] = doc.origin(child).line
                members.append(node)
        return members
    selected = fleet.node_names(selector.get("class"), selector.get("product"),
                                selector.get("cluster"))
    for key, value in selector.items():
        if not _known(fleet, key, value):
            problems.append(doc.problem(element, f"wave {name!r}: unknown {key} {value!r} "
                                                 "(no node of the fleet has it)"))
    if percent is not None:
        selected = _share(selected, int(percent))
    return selected


def _known(fleet: Fleet, key: str, value: str | None) -> bool:
    if key == "class":
        return value in fleet.classes
    return any(getattr(decl.name, key) == value for decl in fleet.nodes.values())


def _share(nodes: list[str], percent: int) -> list[str]:
    """`percent` of `nodes` (rounded up), chosen by a hash of each name: the same nodes
    every revision, spread over the selection rather than its first names."""
    ranked = sorted(nodes, key=lambda node: hashlib.sha256(node.encode()).hexdigest())
    return ranked[: math.ceil(len(nodes) * percent / 100)]
