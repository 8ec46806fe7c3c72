"""Parameterised actions: an action's own variables, and one declaration per item.

    <file path="/etc/sa/app7.conf" template="app.conf.j2"><var name="app">app7</var></file>
    <file for-each="apps" as="app" path="/etc/sa/{app.key}.conf" template="app.conf.j2"/>

An action's `<var>` children are its own variables: its templates see them over the
node's. `for-each` names a list or map variable of the node; the declaration becomes
one action per item, each with the item as the variable named by `as` (default
`item`): `{"key": …, "value": …}`, the key being a map's entry key or a list's
position (from 0). Attributes of the declaration may hold `{app.key}`, `{app.value}`
or `{app.value.port}` placeholders, substituted per item; the result is checked like
any action (schema, canonical path). Expansion happens per node, because the variable
is the node's; nodes with the same value share the expanded actions.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from lxml import etree

from reconciler.compile import xmlload
from reconciler.compile.actions import parse_action
from reconciler.compile.chain import path_key
from reconciler.compile.inventory import Pattern
from reconciler.compile.nodeconfig import Action
from reconciler.compile.values import parse_value
from reconciler.errors import Problem

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[^{}.\s]+)*)\}")
# Names templates already have: an action variable must not hide them.
RESERVED = frozenset({"node", "nodes", "facts"})
NOT_ACTIONS = frozenset({"var", "policy", "include", "health"})


def parse_actions(
    doc: xmlload.XmlDoc, root: etree._Element, cls: str, problems: list[Problem]
) -> tuple[list[Action], list[Pattern]]:
    """The action elements of a class: plain actions (with their own variables) and
    for-each patterns, each problem recorded at its element's line."""
    actions: list[Action] = []
    patterns: list[Pattern] = []
    for element in root:
        if element.tag in NOT_ACTIONS:
            continue
        own = _action_vars(doc, element, problems)
        variable = element.get("for-each")
        if variable is not None:
            name = element.get("as", "item")
            if name in RESERVED:
                problems.append(doc.problem(element, f"as={name!r} would hide the templates' "
                                                     f"own {name!r}: choose another name"))
                continue
            if name in own:
                problems.append(doc.problem(element, f"<var name={name!r}> clashes with as="
                                                     f"{name!r}"))
                continue
            if _check_placeholders(doc, element, name, problems):
                patterns.append(Pattern(doc, element, variable, name, len(actions),
                                        doc.origin(element), cls, own))
            continue
        if element.get("as") is not None:
            problems.append(doc.problem(element, "as= needs for-each="))
            continue
        if not _check_placeholders(doc, element, None, problems):
            continue
        action = parse_action(doc, element, cls, problems)
        if action is not None:
            actions.append(action.model_copy(update={"vars": own}) if own else action)
    return actions, patterns


def _action_vars(
    doc: xmlload.XmlDoc, element: etree._Element, problems: list[Problem]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for var in element.iterchildren("var"):
        name = var.get("name", "")
        if name in RESERVED:
            problems.append(doc.problem(var, f"variable {name!r} would hide the templates' own "
                                             f"{name!r}: choose another name"))
        elif name in found:
            problems.append(doc.problem(var, f"variable {name!r} set twice on one action"))
        found[name] = parse_value(doc, var, problems)
    return found


def _check_placeholders(
    doc: xmlload.XmlDoc, element: etree._Element, name: str | None, problems: list[Problem]
) -> bool:
    """Placeholders only in a for-each, and only of its own item: `{NAME.key}`,
    `{NAME.value}`, `{NAME.value.FIELD…}`."""
    ok = True
    # Children's attributes too: an authorized-keys' <key source="keys/{op.key}.pub"/>.
    for raw, value in [item for node in element.iter() for item in node.attrib.items()]:
        attribute = str(raw)
        for match in PLACEHOLDER.finditer(str(value)):
            if name is None:
                problems.append(doc.problem(element, f"{attribute}= holds the placeholder "
                                                     f"{match.group(0)} outside a for-each"))
                ok = False
            elif match.group(1) != name:
                problems.append(doc.problem(element, f"{attribute}= holds the placeholder "
                                                     f"{match.group(0)}, but this for-each "
                                                     f"binds {name!r}"))
                ok = False
            elif not match.group(2).startswith((".key", ".value")) or \
                    match.group(2).startswith(".key."):
                problems.append(doc.problem(element, f"{attribute}= holds {match.group(0)}: "
                                                     f"write {{{name}.key}}, {{{name}.value}} "
                                                     f"or {{{name}.value.FIELD}}"))
                ok = False
    return ok


def items(value: Any) -> list[tuple[Any, Any]] | None:
    """(key, value) of each item of a map or list; None for anything else."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return list(enumerate(value))
    return None


def _substitute(text: str, name: str, bound: dict[str, Any]) -> str:
    def value_of(match: re.Match[str]) -> str:
        current: Any = bound
        walked = name
        for part in match.group(2).split(".")[1:]:
            if not isinstance(current, dict) or part not in current:
                raise ValueError(f"{match.group(0)}: {walked} has no {part!r}")
            current = current[part]
            walked += f".{part}"
        if isinstance(current, dict | list):
            kind = "map" if isinstance(current, dict) else "list"
            raise ValueError(f"{match.group(0)} is a {kind}: name one of its values")
        if isinstance(current, bool):
            return "true" if current else "false"
        return str(current)

    return PLACEHOLDER.sub(value_of, text)


def expand(pattern: Pattern, value: Any, problems: list[Problem]) -> list[Action]:
    """One action per item of `value` (the node's value of `pattern.variable`; None when
    it has none), each problem recorded at the pattern's line, naming the item."""
    where = (pattern.origin.path, pattern.origin.line)
    if value is None:
        problems.append(Problem(f"for-each={pattern.variable!r}: no such variable on this "
                                "node", *where))
        return []
    found = items(value)
    if found is None:
        kind = type(value).__name__.replace("str", "string")
        problems.append(Problem(f"for-each={pattern.variable!r} is a {kind}, not a list or "
                                "map", *where))
        return []
    actions: list[Action] = []
    seen: dict[str, str] = {}
    for key, item_value in found:
        label = f"{pattern.variable}[{key}]"
        bound = {"key": key, "value": item_value}
        local: list[Problem] = []
        action = _one(pattern, bound, local)
        problems.extend(Problem(f"{p.message} (for-each item {label})", *where) for p in local)
        if action is None:
            continue
        unique = path_key(action) or action.id
        if unique in seen:
            problems.append(Problem(f"for-each={pattern.variable!r} gives {action.id} twice: "
                                    f"items {seen[unique]} and {label}", *where))
            continue
        seen[unique] = label
        actions.append(action.model_copy(update={
            "origin": pattern.origin, "item": label,
            "vars": {**pattern.vars, pattern.name: bound}}))
    return actions


def _one(pattern: Pattern, bound: dict[str, Any], problems: list[Problem]) -> Action | None:
    """The declaration with this item's values in its attributes, checked and parsed."""
    element = copy.deepcopy(pattern.element)
    for name in ("for-each", "as"):
        if name in element.attrib:
            del element.attrib[name]
    for var in list(element.iterchildren("var")):
        element.remove(var)
    try:
        for node in element.iter():
            for key, text in node.attrib.items():
                node.set(str(key), _substitute(str(text), pattern.name, bound))
    except ValueError as exc:
        problems.append(Problem(str(exc)))
        return None
    wrapper = etree.Element("class", name=pattern.declared_in)
    wrapper.append(element)
    refused = xmlload.schema_errors(wrapper)
    if refused:
        problems.extend(Problem(message) for _, _, message in refused)
        return None
    return parse_action(pattern.doc, element, pattern.declared_in, problems)
