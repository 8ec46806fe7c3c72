"""`<health>` checks of a class: parsed with their durations checked, merged along the
class chain (a child's check replaces its parent's of the same name), and their
`after=` references checked against the node's actions."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from reconciler import durations
from reconciler.compile.inventory import MAX_POLICY_SECONDS
from reconciler.compile.nodeconfig import Action, HealthCheck
from reconciler.compile.xmlload import XmlDoc
from reconciler.errors import ConfigError, Problem


def parse(doc: XmlDoc, root: etree._Element, problems: list[Problem]) -> list[HealthCheck]:
    """The `<health>` children of a class element."""
    found: dict[str, HealthCheck] = {}
    for element in root.iterchildren("health"):
        name = element.get("name", "")
        if name in found:
            problems.append(doc.problem(element, f"health check {name!r} declared twice in "
                                                 f"one class (first at line "
                                                 f"{found[name].origin.line})"))
            continue
        seconds = {}
        for attribute, default in (("timeout", "10s"), ("interval", "1s")):
            raw = element.get(attribute, default)
            value = durations.parse(raw)
            if value is None or value.total_seconds() > MAX_POLICY_SECONDS:
                problems.append(doc.problem(element, f"health check {name!r}: {attribute} "
                                                     f"{raw!r} is not a duration "
                                                     f"({durations.EXAMPLES})"))
                continue
            seconds[attribute] = value.total_seconds()
        if len(seconds) < 2:
            continue
        found[name] = HealthCheck(
            name=name, run=element.get("run", ""), timeout=seconds["timeout"],
            retries=int(element.get("retries", "1")), interval=seconds["interval"],
            after=tuple(element.get("after", "").split()), origin=doc.origin(element))
    return list(found.values())


def merge(levels: Iterable[list[HealthCheck]]) -> tuple[HealthCheck, ...]:
    """The checks of a class chain, most general first; a later one replaces an earlier
    one of the same name in place."""
    merged: dict[str, HealthCheck] = {}
    for checks in levels:
        for check in checks:
            merged[check.name] = check
    return tuple(merged.values())


def check_after(node: str, checks: tuple[HealthCheck, ...], actions: tuple[Action, ...]) -> None:
    """Refuse an `after=` naming no action of the node, at the check's line."""
    ids = {action.id for action in actions}
    problems = [Problem(f"health check {check.name!r}: after={ref!r} names no action of "
                        "this node", check.origin.path, check.origin.line, node)
                for check in checks for ref in check.after if ref not in ids]
    if problems:
        raise ConfigError(problems)
