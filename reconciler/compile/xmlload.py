"""Parse config-repo XML safely: no DTDs, no entities, no network, bounded size and
depth, XInclude only inside the repo, and RELAX NG validation with file:line errors.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from lxml import etree

from reconciler.compile.nodeconfig import Origin
from reconciler.compile.schemavalues import enumerations
from reconciler.compile.suggest import did_you_mean
from reconciler.errors import Problem
from reconciler.source.snapshot import Snapshot, clean_relpath

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_INCLUDES = 256
XINCLUDE = "{http://www.w3.org/2001/XInclude}include"
_FORBIDDEN = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
# The XML declaration's encoding: only UTF-8 (and its ASCII subset) is read, so the
# DOCTYPE check above sees the same characters the parser will.
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_UTF8_NAMES = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}


@cache
def schema() -> etree.RelaxNG:
    """The bundled RELAX NG schema (the tool defines the format, not the repo)."""
    path = resources.files("reconciler") / "data" / "repo_layout" / "schema" / "reconciler.rng"
    return etree.RelaxNG(etree.fromstring(path.read_bytes()))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


@dataclass
class XmlDoc:
    """A parsed file with its XIncludes expanded; `where` maps elements to their file."""

    path: str
    root: etree._Element
    files: dict[etree._Element, str] = field(default_factory=dict)

    def file_of(self, element: etree._Element) -> str:
        node: etree._Element | None = element
        while node is not None:
            found = self.files.get(node)
            if found is not None:
                return found
            node = node.getparent()
        return self.path

    def problem(self, element: etree._Element, message: str) -> Problem:
        return Problem(message, self.file_of(element), line_of(element))

    def origin(self, element: etree._Element) -> Origin:
        """Where an element was declared, for provenance and action origins."""
        return Origin.model_construct(path=self.file_of(element), line=element.sourceline or 0)


def line_of(element: etree._Element) -> int | None:
    """The element's line in its own file (None for elements built in memory)."""
    line = element.sourceline
    return line if isinstance(line, int) else None


class XmlError(Exception):
    """Problems found while loading one XML file (all of them, bounded)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _parse_bytes(data: bytes, path: str, read: list[int]) -> etree._Element:
    """Parse one file; `read` counts the bytes of the whole document (the file that
    was asked for and everything it includes), which MAX_BYTES bounds together."""
    read[0] += len(data)
    if len(data) > MAX_BYTES:
        raise XmlError([Problem(f"file is larger than {MAX_BYTES} bytes", path, 1)])
    if read[0] > MAX_BYTES:
        raise XmlError([Problem(f"with what it includes, the document is larger than "
                                f"{MAX_BYTES} bytes", path, 1)])
    _check_utf8(data, path)
    forbidden = _FORBIDDEN.search(data)
    if forbidden:
        line = data.count(b"\n", 0, forbidden.start()) + 1
        kind = forbidden.group(1).decode().upper()
        raise XmlError([Problem(f"{kind} declarations are not allowed (no DTDs, no entities)",
                                path, line)])
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else None)
        message = re.sub(r"\s*, line \d+, column \d+$", "", exc.msg or str(exc)).strip()
        raise XmlError([Problem(f"malformed XML: {message}", path, line)]) from None
    info = root.getroottree().docinfo
    # The byte check above is the rule; this one holds if a parser ever reads more.
    if getattr(info, "doctype", "") or info.internalDTD is not None:
        raise XmlError([Problem("DOCTYPE declarations are not allowed (no DTDs, no entities)",
                                path, 1)])
    depth = _depth(root)
    if depth > MAX_DEPTH:
        raise XmlError([Problem(f"elements nested {depth} deep (limit {MAX_DEPTH})", path, 1)])
    return root


def _check_utf8(data: bytes, path: str) -> None:
    """Config XML is UTF-8: another encoding (UTF-16, UTF-32, EBCDIC...) could spell a
    DOCTYPE that a byte search does not see."""
    declared = _ENCODING.match(data)
    if declared and declared.group(1).lower() not in _UTF8_NAMES:
        name = declared.group(1).decode("ascii", "replace")
        raise XmlError([Problem(f"encoding {name!r} is not allowed: config XML is UTF-8",
                                path, 1)])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise XmlError([Problem("not UTF-8 text: config XML is UTF-8 (no UTF-16, no other "
                                "encodings)", path, line)]) from None
    if b"\0" in data:
        raise XmlError([Problem("NUL byte in the file: config XML is UTF-8 text", path,
                                data.count(b"\n", 0, data.index(b"\0")) + 1)])


def _depth(root: etree._Element) -> int:
    deepest = 0
    for element in root.iter():
        level = 0
        node: etree._Element | None = element
        while node is not None:
            level += 1
            node = node.getparent()
        deepest = max(deepest, level)
    return deepest


def load(snapshot: Snapshot, path: str) -> XmlDoc:
    """Parse `path` from the snapshot, expand XIncludes, validate against the schema."""
    read = [0]
    root = _parse_bytes(snapshot.read(path), path, read)
    doc = XmlDoc(path, root, {root: path})
    _expand_includes(snapshot, doc, root, path, (path,), [0], read)
    _strip_comments(root)
    refused = schema_errors(root)
    if refused:
        problems = [Problem(message, doc.file_of(element) if element is not None else path,
                            line_of(element) if element is not None else line)
                    for element, line, message in refused]
        raise XmlError(_dedupe(problems))
    return doc


def schema_errors(root: etree._Element) -> list[tuple[etree._Element | None, int | None, str]]:
    """What the schema refuses in `root`: the element libxml2 names (if any), the line it
    gives, and the message."""
    validator = schema()
    if validator.validate(root):
        return []
    found: list[tuple[etree._Element | None, int | None, str]] = []
    for entry in validator.error_log:
        hits = root.xpath(entry.path) if entry.path else []
        element = hits[0] if isinstance(hits, list) and hits and \
            isinstance(hits[0], etree._Element) else None
        message = _schema_message(entry.message)
        refused = _INVALID_ATTRIBUTE.match(message)
        if element is not None and refused is not None:
            message = _allowed_values(element, refused.group(1)) or message
        if element is not None and message.endswith(" failed to validate attributes"):
            # libxml2 does not say which attribute: show the values to look at
            shown = " ".join(f'{_text(name)}="{_text(value)}"'
                             for name, value in element.attrib.items())
            message = f"<{element.tag}> has an attribute value the schema refuses: {shown}"
        found.append((element, entry.line, message))
    return found


_INVALID_ATTRIBUTE = re.compile(r"invalid attribute (\S+) for element \S+$")


def _allowed_values(element: etree._Element, attribute: str) -> str | None:
    """`<policy> max-severity="relaod" is not one of none, reload…; did you mean 'reload'?`
    for an enumerated attribute, or None."""
    allowed = enumerations().get((str(element.tag), attribute))
    value = element.get(attribute)
    if allowed is None or value is None or value in allowed:
        return None
    return (f'<{element.tag}> {attribute}="{value}" is not one of {", ".join(allowed)}'
            + did_you_mean(value, allowed))


def _strip_comments(root: etree._Element) -> None:
    """Comments and processing instructions carry no config; drop them before validation."""
    for node in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        parent = node.getparent()
        if parent is not None:
            if node.tail:
                previous = node.getprevious()
                if previous is not None:
                    previous.tail = (previous.tail or "") + node.tail
                else:
                    parent.text = (parent.text or "") + node.tail
            parent.remove(node)


def _expand_includes(
    snapshot: Snapshot,
    doc: XmlDoc,
    root: etree._Element,
    path: str,
    stack: tuple[str, ...],
    counter: list[int],
    read: list[int],
) -> None:
    """Replace each <xi:include href="..."/> with the root element of the named repo file."""
    for include in list(root.iter(XINCLUDE)):
        href = include.get("href", "")
        if set(include.attrib) - {"href"}:
            raise XmlError([Problem("xi:include takes only href= (parse=xml, no xpointer)",
                                    path, line_of(include))])
        try:
            target = clean_relpath(posixpath.normpath(posixpath.join(posixpath.dirname(path),
                                                                     href)), "xi:include href")
            if href.startswith("/") or "://" in href or "\0" in href:
                raise ValueError(f"xi:include href {href!r} must be a path inside the repo")
        except ValueError as exc:
            raise XmlError([Problem(str(exc), path, line_of(include))]) from None
        if target in stack:
            chain = " -> ".join((*stack, target))
            raise XmlError([Problem(f"xi:include cycle: {chain}", path, line_of(include))])
        counter[0] += 1
        if counter[0] > MAX_INCLUDES:
            raise XmlError([Problem(f"more than {MAX_INCLUDES} xi:includes", path,
                                    line_of(include))])
        if not snapshot.is_file(target):
            raise XmlError([Problem(f"xi:include of missing file {target}", path,
                                    line_of(include))])
        included = _parse_bytes(snapshot.read(target), target, read)
        _expand_includes(snapshot, doc, included, target, (*stack, target), counter, read)
        doc.files[included] = target
        included.tail = include.tail
        parent = include.getparent()
        if parent is None:
            raise XmlError([Problem("xi:include cannot be the root element", path, 1)])
        parent.replace(include, included)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _schema_message(message: str) -> str:
    message = message.replace("Relax-NG validity error : ", "")
    return message[:1].lower() + message[1:] if message else "does not match the schema"


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Each message once, without libxml2's restatements: "element X has extra content"
    or "failed to validate content" next to a precise error on the same line, and
    line-less summaries next to any located error in the same file."""
    unique = list(dict.fromkeys(problems))

    def restates(problem: Problem) -> bool:
        return (" has extra content: " in problem.message or not problem.line
                or problem.message.endswith(" failed to validate content"))

    precise = [p for p in unique if not restates(p)]
    at_line = {(p.path, p.line) for p in precise}
    in_file = {p.path for p in precise}
    return [p for p in unique if not restates(p) or (
        (p.path, p.line) not in at_line if p.line else p.path not in in_file)]
