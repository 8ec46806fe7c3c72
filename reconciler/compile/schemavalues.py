"""The values the schema allows for an enumerated attribute (`max-severity`, `state`,
`ensure`…), read from the bundled RELAX NG, so a refused value can be answered with the
list and the nearest one instead of libxml2's "invalid attribute"."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lxml import etree

_RNG = "{http://relaxng.org/ns/structure/1.0}"


@cache
def enumerations() -> dict[tuple[str, str], tuple[str, ...]]:
    """(element, attribute) -> the allowed values, for every attribute the schema declares
    as a choice of literal values."""
    path = resources.files("reconciler") / "data" / "repo_layout" / "schema" / "reconciler.rng"
    grammar = etree.fromstring(path.read_bytes())
    defines = {d.get("name"): d for d in grammar.iter(f"{_RNG}define")}
    found: dict[tuple[str, str], list[str] | None] = {}
    for element in grammar.iter(f"{_RNG}element"):
        for attribute in _attributes(element, defines, set()):
            key = (element.get("name", ""), attribute.get("name", ""))
            values = _values(attribute, defines, set())
            # An attribute declared in several alternatives allows each one's values.
            known = found.get(key, [])
            found[key] = None if values is None or known is None else \
                list(dict.fromkeys([*known, *values]))
    return {key: tuple(values) for key, values in found.items() if values}


def _attributes(
    node: etree._Element, defines: dict[str | None, etree._Element], seen: set[str]
) -> list[etree._Element]:
    """The <attribute>s of one element's pattern, following refs, not into child elements."""
    found: list[etree._Element] = []
    for child in node:
        if child.tag == f"{_RNG}attribute":
            found.append(child)
        elif child.tag == f"{_RNG}ref":
            name = child.get("name", "")
            if name not in seen and name in defines:
                found += _attributes(defines[name], defines, seen | {name})
        elif child.tag != f"{_RNG}element":
            found += _attributes(child, defines, seen)
    return found


def _values(
    node: etree._Element, defines: dict[str | None, etree._Element], seen: set[str]
) -> list[str] | None:
    """The literal values a pattern is a choice of, or None when it allows anything else."""
    values: list[str] = []
    for child in node:
        if child.tag == f"{_RNG}value":
            values.append((child.text or "").strip())
        elif child.tag == f"{_RNG}choice":
            inner = _values(child, defines, seen)
            if inner is None:
                return None
            values += inner
        elif child.tag == f"{_RNG}ref" and child.get("name", "") not in seen:
            name = child.get("name", "")
            inner = _values(defines[name], defines, seen | {name}) if name in defines else None
            if inner is None:
                return None
            values += inner
        else:
            return None
    return values or None
