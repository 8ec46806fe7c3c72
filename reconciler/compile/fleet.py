"""Parsing the config repo's XML: fleet.xml (defaults, <vars> blocks, node ranges and
single nodes) and every class file, collecting every problem rather than the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from reconciler.compile import health, names, repofiles, xmlload
from reconciler.compile.checks import check_debs, check_duplicates_in_class
from reconciler.compile.expand import parse_actions
from reconciler.compile.inventory import (
    CLASSES_DIR,
    MAX_POLICY_SECONDS,
    Block,
    ClassDecl,
    Fleet,
    Layer,
    NodeDecl,
    VarDecl,
)
from reconciler.compile.mixins import parse_includes
from reconciler.compile.nodeconfig import Severity
from reconciler.compile.suggest import did_you_mean
from reconciler.compile.values import parse_value
from reconciler.errors import ConfigError, Problem
from reconciler.rollout import window
from reconciler.secrets import sealed
from reconciler.source.snapshot import Snapshot

# Bounds that keep a typo in a <nodes> range from hanging or exhausting memory: no
# sane range is this large, and a host name label is at most 63 characters (RFC 1035).
MAX_RANGE_COUNT = 100_000
MAX_HOST_LABEL = 63


def load_doc(snapshot: Snapshot, path: str, problems: list[Problem]) -> xmlload.XmlDoc | None:
    """One XML file of the repo, parsed and validated; None (problems recorded) if it is not."""
    try:
        if not snapshot.is_file(path):
            missing = "a directory, not a file" if snapshot.is_dir(path) else "file not found"
            problems.append(Problem(missing, path))
            return None
        return xmlload.load(snapshot, path)
    except xmlload.XmlError as exc:
        problems.extend(exc.problems)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return None


def parse_fleet(
    snapshot: Snapshot,
    doc: xmlload.XmlDoc,
    classes: dict[str, ClassDecl],
    broken: set[str],
    problems: list[Problem],
) -> Fleet:
    """The fleet that fleet.xml declares over the loaded `classes`; nodes of a `broken`
    class are skipped without a second error."""
    root = doc.root
    domain = root.get("domain", "")
    defaults_el = root.find("defaults")
    defaults = Layer("defaults")
    default_policy: dict[str, Any] = {}
    if defaults_el is not None:
        defaults = _parse_vars(snapshot, doc, defaults_el, "defaults", problems)
        default_policy = _parse_policy(doc, defaults_el, problems)
    declared = {kind: frozenset(root.get(f"{kind}s", "").split())
                for kind in ("product", "cluster") if root.get(f"{kind}s") is not None}
    fleet = Fleet(snapshot, domain, defaults, default_policy, [], {}, classes, declared)
    known = _ClassCheck(classes, broken, declared)
    for order, element in enumerate(root):
        if element.tag == "vars":
            selector = {k: element.get(k, "") for k in ("class", "product", "cluster")
                        if element.get(k) is not None}
            if "class" in selector and not known.check(doc, element, selector["class"],
                                                       problems):
                continue
            if not known.grouping(doc, element, selector, problems):
                continue
            label = "vars " + " ".join(f"{k}={v}" for k, v in selector.items())
            if not selector:
                label = "vars (every node)"
            layer = _parse_vars(snapshot, doc, element, label, problems)
            fleet.blocks.append(Block(selector, layer, order, doc.origin(element)))
        elif element.tag == "nodes":
            _expand_range(doc, element, fleet, known, problems)
    for element in root.iterchildren("node"):
        _add_single_node(doc, element, fleet, known, problems)
    return fleet


@dataclass
class _ClassCheck:
    """Whether a class named in fleet.xml exists; a class whose own file has errors
    exists too (its errors are reported there), so it is skipped without a second error."""

    classes: dict[str, ClassDecl]
    broken: set[str]
    declared: dict[str, frozenset[str]]

    def check(self, doc: xmlload.XmlDoc, element: etree._Element, cls: str,
              problems: list[Problem], context: str = "") -> bool:
        if cls in self.classes:
            return True
        if cls not in self.broken:
            problems.append(doc.problem(
                element, f"unknown class {cls!r}{context} (no {CLASSES_DIR}/{cls}.xml)"
                         + did_you_mean(cls, [*self.classes, *self.broken])))
        return False

    def grouping(self, doc: xmlload.XmlDoc, element: etree._Element, named: dict[str, str],
                 problems: list[Problem], context: str = "") -> bool:
        """Whether the product and cluster in `named` are ones the fleet declares (any
        is, when the fleet declares none)."""
        ok = True
        for kind in ("product", "cluster"):
            value, allowed = named.get(kind), self.declared.get(kind)
            if value is None or allowed is None or value in allowed:
                continue
            ok = False
            problems.append(doc.problem(
                element, f"unknown {kind} {value!r}{context} (the fleet declares "
                         f"{', '.join(sorted(allowed))}){did_you_mean(value, allowed)}"))
        return ok


def _expand_range(
    doc: xmlload.XmlDoc,
    element: etree._Element,
    fleet: Fleet,
    known: _ClassCheck,
    problems: list[Problem],
) -> None:
    cls, product, cluster = (element.get(k, "") for k in ("class", "product", "cluster"))
    raw = [element.get(k, d) for k, d in (("count", "0"), ("start", "1"), ("width", "2"))]
    if any(len(value) > MAX_HOST_LABEL for value in raw):
        problems.append(doc.problem(element, "count, start or width of this range is too large"))
        return
    count, start, width = (int(value) for value in raw)
    if count > MAX_RANGE_COUNT:
        problems.append(doc.problem(
            element, f"count {count} is too large (at most {MAX_RANGE_COUNT} nodes per range)"))
        return
    digits = max(width, len(str(start + count - 1)))
    if len(cls) + 1 + digits > MAX_HOST_LABEL:
        problems.append(doc.problem(
            element, f"host names {cls}-<number> of this range would be longer than "
                     f"{MAX_HOST_LABEL} characters (check start and width)"))
        return
    if not known.check(doc, element, cls, problems) or \
            not known.grouping(doc, element, {"product": product, "cluster": cluster}, problems):
        return
    label = f"nodes {cls}.{product}.{cluster}"
    layer = _parse_vars(fleet.snapshot, doc, element, label, problems)
    policy = _parse_policy(doc, element, problems)
    origin = doc.origin(element)
    for number in range(start, start + count):
        name = names.make(cls, number, product, cluster, fleet.domain, width)
        fqdn = name.fqdn
        if fqdn in fleet.nodes:
            first = fleet.nodes[fqdn].origin
            problems.append(doc.problem(
                element, f"duplicate node {fqdn} (first declared at {first})"))
            continue
        fleet.nodes[fqdn] = NodeDecl(name, origin, range_layer=layer, range_policy=policy)


def _add_single_node(
    doc: xmlload.XmlDoc,
    element: etree._Element,
    fleet: Fleet,
    known: _ClassCheck,
    problems: list[Problem],
) -> None:
    fqdn = element.get("name", "")
    try:
        name = names.parse(fqdn)
    except names.NodeNameError as exc:
        problems.append(doc.problem(element, str(exc)))
        return
    if name.domain != fleet.domain:
        problems.append(doc.problem(
            element, f"node {fqdn} is not in the fleet's domain {fleet.domain!r}"))
        return
    if not known.check(doc, element, name.cls, problems, f" in node name {fqdn}") or \
            not known.grouping(doc, element, {"product": name.product, "cluster": name.cluster},
                               problems, f" in node name {fqdn}"):
        return
    decl = fleet.nodes.get(fqdn)
    if decl is None:
        decl = NodeDecl(name, doc.origin(element))
        fleet.nodes[fqdn] = decl
    elif decl.node_layer is not None:
        problems.append(doc.problem(
            element, f"duplicate node {fqdn} (first declared at {decl.origin})"))
        return
    decl.node_layer = _parse_vars(fleet.snapshot, doc, element, "node", problems)
    decl.node_policy = _parse_policy(doc, element, problems)


def load_classes(
    snapshot: Snapshot, problems: list[Problem]
) -> tuple[dict[str, ClassDecl], set[str]]:
    """Every class that loads cleanly, and the names (from file names) of those that don't."""
    classes: dict[str, ClassDecl] = {}
    broken: set[str] = set()
    for filename in snapshot.listdir(CLASSES_DIR):
        if not filename.endswith(".xml"):
            continue
        path = f"{CLASSES_DIR}/{filename}"
        broken.add(filename[: -len(".xml")])
        doc = load_doc(snapshot, path, problems)
        if doc is None:
            continue
        root = doc.root
        if root.tag != "class":
            problems.append(doc.problem(root, "a class file must have a <class> root"))
            continue
        name = root.get("name", "")
        if filename != f"{name}.xml":
            problems.append(doc.problem(root, f"class {name!r} must live in classes/{name}.xml"))
            continue
        count_before = len(problems)
        actions, patterns = parse_actions(doc, root, name, problems)
        includes = parse_includes(doc, root, problems)
        checks = health.parse(doc, root, problems)
        check_duplicates_in_class(actions, problems)
        check_debs(snapshot, actions, problems)
        actions = repofiles.resolve(snapshot, actions, problems)
        layer = _parse_vars(snapshot, doc, root, f"class {name}", problems)
        policy = _parse_policy(doc, root, problems)
        if len(problems) > count_before:
            continue
        broken.discard(name)
        classes[name] = ClassDecl(
            name=name,
            path=path,
            origin=doc.origin(root),
            inherits=root.get("inherits"),
            policy=policy,
            layer=layer,
            actions=actions,
            patterns=patterns,
            includes=includes,
            health=checks,
        )
    return classes, broken


def _parse_vars(
    snapshot: Snapshot, doc: xmlload.XmlDoc, parent: etree._Element, label: str,
    problems: list[Problem],
) -> Layer:
    """The <var>s of one element; an `encrypted=` one holds its `Sealed` value (the
    ciphertext and its recipients, read and checked here), never plain text."""
    layer = Layer(label)
    seen: set[str] = set()
    for element in parent.iterchildren("var"):
        name = element.get("name", "")
        if name in seen:
            problems.append(doc.problem(element, f"variable {name!r} set twice in one block"))
        seen.add(name)
        encrypted = element.get("encrypted")
        if encrypted is not None:
            try:
                value: Any = sealed.load(snapshot, encrypted)
            except (ValueError, ConfigError, OSError) as exc:
                message = exc.problems[0].message if isinstance(exc, ConfigError) else str(exc)
                problems.append(doc.problem(element, f"secret variable {name!r}: {message}"))
                continue
            layer.decls.append(VarDecl(name, value, doc.origin(element), True))
            continue
        value = parse_value(doc, element, problems)
        layer.decls.append(VarDecl(name, value, doc.origin(element),
                                   element.get("secret") == "true"))
    return layer


def _parse_policy(
    doc: xmlload.XmlDoc, parent: etree._Element, problems: list[Problem]
) -> dict[str, Any]:
    element = parent.find("policy")
    if element is None:
        return {}
    values: dict[str, Any] = {}
    for attribute in ("mode", "max-severity", "interval", "splay", "local-edits", "prune",
                      "window", "window-severity"):
        raw = element.get(attribute)
        if raw is None:
            continue
        field_name = attribute.replace("-", "_")
        if field_name in ("max_severity", "window_severity"):
            values[field_name] = Severity.parse(raw)
        elif field_name == "window":
            try:
                window.parse(raw)
            except ValueError as exc:
                problems.append(doc.problem(element, str(exc)))
                continue
            values[field_name] = raw
        elif field_name in ("interval", "splay"):
            if len(raw) > len(str(MAX_POLICY_SECONDS)) or int(raw) > MAX_POLICY_SECONDS:
                problems.append(doc.problem(
                    element, f"{attribute} {raw} is too large (at most {MAX_POLICY_SECONDS}s)"))
                continue
            values[field_name] = int(raw)
        elif field_name == "prune":
            values[field_name] = raw == "true"
        else:
            values[field_name] = raw
    if "mode" in values:
        values["mode_from"] = f"the fleet's policy at {doc.origin(element)}"
    return values
