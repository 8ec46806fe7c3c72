"""Typed variable values as the XML spells them: `<var type="list"><item>…</item></var>`."""

from __future__ import annotations

from typing import Any

from lxml import etree

from reconciler.compile import xmlload
from reconciler.errors import Problem


def parse_value(doc: xmlload.XmlDoc, element: etree._Element, problems: list[Problem]) -> Any:
    """The typed value of a <var> (or of one of its items or entries): string, int, bool,
    list or map; what does not parse is recorded as a problem at its line. The text of
    a secret variable (or of an item or entry of one) is never quoted in a problem."""
    kind = element.get("type", "string")
    if kind == "list":
        return [parse_value(doc, item, problems) for item in element if item.tag == "item"]
    if kind == "map":
        result: dict[str, Any] = {}
        for entry in element:
            key = entry.get("key", "")
            if key in result:
                shown_key = "in the secret value" if _is_secret(entry) else repr(key)
                problems.append(doc.problem(entry, f"duplicate map key {shown_key}"))
            result[key] = parse_value(doc, entry, problems)
        return result
    text = element.text or ""
    shown = "the secret value" if _is_secret(element) else repr(text.strip())
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            problems.append(doc.problem(element, f"{shown} is not an integer"))
            return 0
    if kind == "bool":
        word = text.strip()
        if word not in ("true", "false"):
            problems.append(doc.problem(element, f"{shown} is not a boolean (true or false)"))
        return word == "true"
    return text


def _is_secret(element: etree._Element) -> bool:
    """Whether `element` is, or is inside, a variable marked secret="true"."""
    node: etree._Element | None = element
    while node is not None:
        if node.get("secret") == "true":
            return True
        node = node.getparent()
    return False
