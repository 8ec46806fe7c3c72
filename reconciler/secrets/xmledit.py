"""Edit config-repo XML as text, so `reconciler secret` changes exactly the lines of one
variable and leaves comments, attribute layout and everything else as people wrote it.

Elements are found with lxml (on the file itself, includes not expanded) and then in
the text: libxml2 gives the line on which a start tag *ends*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from reconciler.compile.xmlload import line_of

_SELECTOR_KEYS = ("class", "product", "cluster")


@dataclass(frozen=True)
class Target:
    """A layer of fleet.xml that `reconciler secret set` writes: the defaults, a <vars>
    block of this selector, or one <node>."""

    cls: str | None = None
    product: str | None = None
    cluster: str | None = None
    node: str | None = None

    @property
    def selector(self) -> dict[str, str]:
        values = (self.cls, self.product, self.cluster)
        return {k: v for k, v in zip(_SELECTOR_KEYS, values, strict=True) if v is not None}


def encrypted_var(name: str, path: str) -> str:
    return f'<var name="{name}" encrypted="{path}"/>'


def _line_end(text: str, line: int) -> int:
    """The offset just past line `line` (1-based) of `text`."""
    offset = 0
    for _ in range(line):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _start_tag(text: str, tag: str, line: int, attrs: dict[str, str]) -> re.Match[str]:
    """The start tag `<tag …>` whose `>` is on line `line` and that has `attrs`."""
    low, high = _line_end(text, line - 1), _line_end(text, line)
    found = None
    for match in re.finditer(rf"<{tag}(\s[^>]*)?>", text):
        if match.start() >= high:
            break
        if match.end() <= low:
            continue
        body = match.group(1) or ""
        if all(re.search(rf"""\b{k}\s*=\s*(["']){re.escape(v)}\1""", body)
               for k, v in attrs.items()):
            found = match
    if found is None:
        raise ValueError(f"cannot find <{tag}> ending on line {line}")
    return found


def replace_var(text: str, line: int, name: str, replacement: str) -> str:
    """`text` with the <var name=NAME> whose start tag ends on `line` replaced whole."""
    start = _start_tag(text, "var", line, {"name": name})
    end = start.end() if start.group(0).endswith("/>") else text.find("</var>", start.end())
    if end < 0:
        raise ValueError(f"<var name={name!r}> on line {line} is not closed")
    if not start.group(0).endswith("/>"):
        end += len("</var>")
    return text[: start.start()] + replacement + text[end:]


def _indent(text: str, offset: int) -> str:
    begin = _line_start(text, offset)
    return re.match(r"[ \t]*", text[begin:offset]).group(0)  # type: ignore[union-attr]


def _insert_into(text: str, start: re.Match[str], tag: str, element: str) -> str:
    indent = _indent(text, start.start())
    if start.group(0).endswith("/>"):
        opened = start.group(0)[:-2].rstrip() + ">"
        return (text[: start.start()] + f"{opened}\n{indent}  {element}\n{indent}</{tag}>"
                + text[start.end():])
    return text[: start.end()] + f"\n{indent}  {element}" + text[start.end():]


def _parse(text: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(text.encode(), parser)


def add_var(text: str, target: Target, element: str) -> str:
    """fleet.xml's `text` with `element` (a <var>) added to `target`'s layer, creating the
    <defaults>, <vars> or <node> element when fleet.xml has none."""
    root = _parse(text)
    if target.node is not None:
        tag, attrs = "node", {"name": target.node}
        matches = [e for e in root.iterchildren("node") if e.get("name") == target.node]
    elif not target.selector:
        tag, attrs = "defaults", {}
        matches = list(root.iterchildren("defaults"))
    else:
        tag, attrs = "vars", target.selector
        matches = [e for e in root.iterchildren("vars")
                   if {k: v for k, v in e.attrib.items() if k in _SELECTOR_KEYS} == attrs]
    if matches:
        line = line_of(matches[-1])
        if line is None:
            raise ValueError(f"cannot locate <{tag}> in fleet.xml")
        return _insert_into(text, _start_tag(text, tag, line, attrs), tag, element)
    shown = "".join(f' {k}="{v}"' for k, v in attrs.items())
    block = f"  <{tag}{shown}>\n    {element}\n  </{tag}>\n"
    if tag == "defaults":  # the schema wants it first
        fleet = _start_tag(text, "fleet", line_of(root) or 1, {})
        return text[: fleet.end()] + "\n" + block.rstrip("\n") + text[fleet.end():]
    close = text.rfind("</fleet>")
    if close < 0:
        raise ValueError("fleet.xml has no </fleet>")
    begin = _line_start(text, close)
    if text[begin:close].strip():
        return text[:close] + "\n" + block + text[close:]
    return text[:begin] + block + text[begin:]
