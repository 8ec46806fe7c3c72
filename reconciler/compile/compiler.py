"""Compile: the config repo at one revision → one validated `NodeConfig` per node.

`load_fleet` parses fleet.xml and every class once per revision (collecting every
problem, not just the first); `compile_node` then resolves one node cheaply: its class
chain, its variable layers with provenance, its policy and its actions.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lxml import etree
from pydantic import ValidationError

from reconciler.compile import names, xmlload
from reconciler.compile.nodeconfig import (
    PATH_KINDS,
    Action,
    CommandAction,
    DirectoryAction,
    FileAction,
    NodeConfig,
    Notify,
    Origin,
    PackageAction,
    Policy,
    Provenance,
    ServiceAction,
    Severity,
    SymlinkAction,
    TreeAction,
    Variable,
)
from reconciler.errors import ConfigError, Problem, UsageError
from reconciler.source.snapshot import Snapshot, clean_relpath

FLEET_FILE = "fleet.xml"
CLASSES_DIR = "classes"
TEMPLATES_DIR = "templates"

DEFAULT_SEVERITY = {
    "file": Severity.NONE,
    "tree": Severity.NONE,
    "directory": Severity.NONE,
    "symlink": Severity.NONE,
    "package": Severity.RESTART,
    "service": Severity.RESTART,
    "command": Severity.RESTART,
}
_SELECTOR_RANK = {"class": 0, "cluster": 1, "product": 2}
# Bounds that keep a typo in a <nodes> range from hanging or exhausting memory: no
# sane range is this large, and a host name label is at most 63 characters (RFC 1035).
MAX_RANGE_COUNT = 100_000
MAX_HOST_LABEL = 63
# A policy interval or splay, or a command timeout, longer than this is a typo (and
# would overflow a sleep or a wait).
MAX_POLICY_SECONDS = 30 * 86400


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


@dataclass
class ClassDecl:
    name: str
    path: str
    origin: Origin
    inherits: str | None
    policy: dict[str, Any]
    layer: Layer
    actions: list[Action]


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
    _chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _class_actions: dict[str, tuple[Action, ...]] = field(default_factory=dict)
    _variables: dict[tuple[str, tuple[int, ...]], Variable] = field(default_factory=dict)

    @property
    def revision(self) -> str | None:
        return self.snapshot.revision

    def node_names(
        self, cls: str | None = None, product: str | None = None, cluster: str | None = None
    ) -> list[str]:
        """Sorted fqdn names of the nodes matching every given filter."""
        return [
            fqdn
            for fqdn, decl in self._sorted_nodes
            if (cls is None or decl.name.cls == cls)
            and (product is None or decl.name.product == product)
            and (cluster is None or decl.name.cluster == cluster)
        ]

    @cached_property
    def _sorted_nodes(self) -> list[tuple[str, NodeDecl]]:
        def key(item: tuple[str, NodeDecl]) -> tuple[str, str, str, int]:
            name = item[1].name
            return (name.cls, name.product, name.cluster, name.number)

        return sorted(self.nodes.items(), key=key)

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

    def class_actions(self, cls: str) -> tuple[Action, ...]:
        if cls not in self._class_actions:
            self._class_actions[cls] = _resolve_actions(self, self.chain(cls))
        return self._class_actions[cls]


def load_fleet(snapshot: Snapshot) -> Fleet:
    """Parse and check fleet.xml and every class; raise ConfigError listing every problem."""
    problems: list[Problem] = []
    classes, broken = _load_classes(snapshot, problems)
    fleet_doc = _load_doc(snapshot, FLEET_FILE, problems)
    if fleet_doc is None:
        raise ConfigError(problems)
    if fleet_doc.root.tag != "fleet":
        problems.append(fleet_doc.problem(fleet_doc.root, "fleet.xml must have a <fleet> root"))
        raise ConfigError(problems)
    fleet = _parse_fleet(snapshot, fleet_doc, classes, broken, problems)
    _check_classes(fleet, broken, problems)
    for cls in fleet.classes:
        if not any(p.path == fleet.classes[cls].path for p in problems):
            try:
                fleet.class_actions(cls)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(_unique(problems))
    return fleet


def _unique(problems: list[Problem]) -> list[Problem]:
    """The problems in order, each reported once (a shared parent can be reached twice)."""
    return list(dict.fromkeys(problems))


def compile_node(fleet: Fleet, name: str) -> NodeConfig:
    """Resolve one node: class chain, variables with provenance, policy, actions."""
    decl = fleet.nodes.get(name)
    if decl is None:
        raise UsageError.because(
            f"unknown node {name!r}: not in {FLEET_FILE} at {fleet.snapshot.label}"
        )
    node = decl.name
    chain = fleet.chain(node.cls)
    layers = [fleet.defaults]
    layers += [fleet.classes[c].layer for c in chain]
    layers += [
        b.layer
        for b in sorted(fleet.blocks, key=lambda b: b.specificity)
        if b.matches(node.cls, node.product, node.cluster)
    ]
    layers += [layer for layer in (decl.range_layer, decl.node_layer) if layer is not None]
    policy_values = dict(fleet.default_policy)
    for cls in chain:
        policy_values.update(fleet.classes[cls].policy)
    policy_values.update(decl.range_policy)
    policy_values.update(decl.node_policy)
    return NodeConfig(
        name=name,
        cls=node.cls,
        number=node.number,
        product=node.product,
        cluster=node.cluster,
        domain=node.domain,
        class_chain=chain,
        variables=_merge_layers(layers, fleet._variables),
        policy=Policy(**policy_values),
        actions=fleet.class_actions(node.cls),
        revision=fleet.revision,
    )


# ---------------------------------------------------------------- variables


def _merge_layers(
    layers: list[Layer], shared: dict[tuple[str, tuple[int, ...]], Variable]
) -> dict[str, Variable]:
    """Winning value per variable with every layer that set it. Provenance records are
    built once per declaration, and `shared` (one per fleet) holds one Variable per
    distinct chain of them, so a large fleet compiles fast."""
    history: dict[str, list[Provenance]] = {}
    for layer in layers:
        for name, step in layer.provenance():
            history.setdefault(name, []).append(step)
    variables = {}
    for name, steps in sorted(history.items()):
        # The records are alive in the fleet's layers, so their ids are stable keys.
        key = (name, tuple(id(step) for step in steps))
        found = shared.get(key)
        if found is None:
            found = Variable.model_construct(
                name=name, value=steps[-1].value, set_by=steps[-1],
                overrode=tuple(steps[:-1]), secret=any(step.secret for step in steps),
            )  # fmt: skip
            shared[key] = found
        variables[name] = found
    return variables


def _parse_value(doc: xmlload.XmlDoc, element: etree._Element, problems: list[Problem]) -> Any:
    kind = element.get("type", "string")
    if kind == "list":
        return [_parse_value(doc, item, problems) for item in element if item.tag == "item"]
    if kind == "map":
        result: dict[str, Any] = {}
        for entry in element:
            key = entry.get("key", "")
            if key in result:
                problems.append(doc.problem(entry, f"duplicate map key {key!r}"))
            result[key] = _parse_value(doc, entry, problems)
        return result
    text = element.text or ""
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            problems.append(doc.problem(element, f"{text.strip()!r} is not an integer"))
            return 0
    if kind == "bool":
        word = text.strip()
        if word not in ("true", "false"):
            problems.append(doc.problem(element, f"{word!r} is not a boolean (true or false)"))
        return word == "true"
    return text


def _parse_vars(
    doc: xmlload.XmlDoc, parent: etree._Element, label: str, problems: list[Problem]
) -> Layer:
    layer = Layer(label)
    seen: set[str] = set()
    for element in parent.iterchildren("var"):
        name = element.get("name", "")
        if name in seen:
            problems.append(doc.problem(element, f"variable {name!r} set twice in one block"))
        seen.add(name)
        value = _parse_value(doc, element, problems)
        layer.decls.append(VarDecl(name, value, _origin(doc, element),
                                   element.get("secret") == "true"))
    return layer


def _parse_policy(
    doc: xmlload.XmlDoc, parent: etree._Element, problems: list[Problem]
) -> dict[str, Any]:
    element = parent.find("policy")
    if element is None:
        return {}
    values: dict[str, Any] = {}
    for attribute in ("mode", "max-severity", "interval", "splay", "local-edits", "prune"):
        raw = element.get(attribute)
        if raw is None:
            continue
        field_name = attribute.replace("-", "_")
        if field_name == "max_severity":
            values[field_name] = Severity.parse(raw)
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
    return values


def _origin(doc: xmlload.XmlDoc, element: etree._Element) -> Origin:
    return Origin.model_construct(path=doc.file_of(element), line=element.sourceline or 0)


# ---------------------------------------------------------------- fleet.xml


def _load_doc(snapshot: Snapshot, path: str, problems: list[Problem]) -> xmlload.XmlDoc | None:
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


def _parse_fleet(
    snapshot: Snapshot,
    doc: xmlload.XmlDoc,
    classes: dict[str, ClassDecl],
    broken: set[str],
    problems: list[Problem],
) -> Fleet:
    root = doc.root
    domain = root.get("domain", "")
    defaults_el = root.find("defaults")
    defaults = Layer("defaults")
    default_policy: dict[str, Any] = {}
    if defaults_el is not None:
        defaults = _parse_vars(doc, defaults_el, "defaults", problems)
        default_policy = _parse_policy(doc, defaults_el, problems)
    fleet = Fleet(snapshot, domain, defaults, default_policy, [], {}, classes)
    known = _ClassCheck(classes, broken)
    for order, element in enumerate(root):
        if element.tag == "vars":
            selector = {k: element.get(k, "") for k in ("class", "product", "cluster")
                        if element.get(k) is not None}
            if "class" in selector and not known.check(doc, element, selector["class"],
                                                       problems):
                continue
            label = "vars " + " ".join(f"{k}={v}" for k, v in selector.items())
            if not selector:
                label = "vars (every node)"
            fleet.blocks.append(Block(selector, _parse_vars(doc, element, label, problems), order))
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

    def check(self, doc: xmlload.XmlDoc, element: etree._Element, cls: str,
              problems: list[Problem], context: str = "") -> bool:
        if cls in self.classes:
            return True
        if cls not in self.broken:
            problems.append(doc.problem(
                element, f"unknown class {cls!r}{context} (no {CLASSES_DIR}/{cls}.xml)"))
        return False


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
    if not known.check(doc, element, cls, problems):
        return
    label = f"nodes {cls}.{product}.{cluster}"
    layer = _parse_vars(doc, element, label, problems)
    policy = _parse_policy(doc, element, problems)
    origin = _origin(doc, element)
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
    if not known.check(doc, element, name.cls, problems, f" in node name {fqdn}"):
        return
    decl = fleet.nodes.get(fqdn)
    if decl is None:
        decl = NodeDecl(name, _origin(doc, element))
        fleet.nodes[fqdn] = decl
    elif decl.node_layer is not None:
        problems.append(doc.problem(
            element, f"duplicate node {fqdn} (first declared at {decl.origin})"))
        return
    decl.node_layer = _parse_vars(doc, element, "node", problems)
    decl.node_policy = _parse_policy(doc, element, problems)


# ---------------------------------------------------------------- classes


def _load_classes(
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
        doc = _load_doc(snapshot, path, problems)
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
        actions = [a for a in (_parse_action(doc, el, name, problems) for el in root
                               if el.tag not in ("var", "policy")) if a is not None]
        _check_duplicates_in_class(actions, problems)
        _check_debs(snapshot, actions, problems)
        layer = _parse_vars(doc, root, f"class {name}", problems)
        policy = _parse_policy(doc, root, problems)
        if len(problems) > count_before:
            continue
        broken.discard(name)
        classes[name] = ClassDecl(
            name=name,
            path=path,
            origin=_origin(doc, root),
            inherits=root.get("inherits"),
            policy=policy,
            layer=layer,
            actions=actions,
        )
    return classes, broken


def _check_debs(snapshot: Snapshot, actions: list[Action], problems: list[Problem]) -> None:
    """A package's deb= names a file that must exist under templates/ at this revision."""
    for action in actions:
        if isinstance(action, PackageAction) and action.deb is not None:
            path = f"{TEMPLATES_DIR}/{action.deb}"
            try:
                found = snapshot.is_file(path)
            except ConfigError as exc:
                problems.extend(Problem(p.message, action.origin.path, action.origin.line,
                                        action=action.id) for p in exc.problems)
                continue
            if not found:
                problems.append(Problem(f"deb file {path} not found", action.origin.path,
                                        action.origin.line, action=action.id))


def _check_classes(fleet: Fleet, broken: set[str], problems: list[Problem]) -> None:
    """Every parent exists and no chain loops back on itself; each cycle and each unknown
    parent is reported once, where it is declared. Classes with a bad chain are dropped."""
    bad: set[str] = set()
    cycles: set[frozenset[str]] = set()
    for name in fleet.classes:
        seen = [name]
        current = fleet.classes[name].inherits
        while current is not None:
            if current not in fleet.classes:
                last = fleet.classes[seen[-1]]
                if current not in broken:
                    problems.append(Problem(f"class {last.name!r} inherits unknown class "
                                            f"{current!r} (no {CLASSES_DIR}/{current}.xml)",
                                            last.path, last.origin.line))
                bad.add(name)
                break
            if current in seen:
                loop = seen[seen.index(current):]
                if frozenset(loop) not in cycles:
                    cycles.add(frozenset(loop))
                    first = fleet.classes[loop[0]]
                    problems.append(Problem("class inheritance cycle: "
                                            + " -> ".join([*loop, current]),
                                            first.path, first.origin.line))
                bad.add(name)
                break
            seen.append(current)
            current = fleet.classes[current].inherits
    for name in bad:
        del fleet.classes[name]


def _path_key(action: Action) -> str | None:
    """The node path of a filesystem action (canonical: checked at parse), else None."""
    return action.path if action.kind in PATH_KINDS else None  # type: ignore[union-attr]


def _check_duplicates_in_class(actions: list[Action], problems: list[Problem]) -> None:
    by_id: dict[str, Action] = {}
    by_path: dict[str, Action] = {}
    for action in actions:
        key = _path_key(action)
        previous = by_path.get(key) if key is not None else by_id.get(action.id)
        if previous is not None:
            what = f"path {key}" if key is not None else action.id
            problems.append(Problem(f"{what} is declared twice in this class "
                                    f"(also at line {previous.origin.line})",
                                    action.origin.path, action.origin.line))
        by_id[action.id] = action
        if key is not None:
            by_path[key] = action


def _resolve_actions(fleet: Fleet, chain: tuple[str, ...]) -> tuple[Action, ...]:
    """Walk the chain general → specific; a child's action replaces the parent's on the same
    path (or id), keeping the parent's position; then check references and cycles."""
    ordered: dict[str, Action] = {}
    for cls in chain:
        for action in fleet.classes[cls].actions:
            key = _path_key(action) or action.id
            ordered[key] = action
    actions = tuple(ordered.values())
    problems: list[Problem] = []
    ids = {a.id for a in actions}
    for action in actions:
        for ref in action.requires:
            if ref not in ids:
                problems.append(Problem(f"requires unknown action {ref!r}",
                                        action.origin.path, action.origin.line,
                                        action=action.id))
        for notify in action.notify:
            if notify.target not in ids:
                problems.append(Problem(f"notifies unknown action {notify.target!r}",
                                        action.origin.path, action.origin.line,
                                        action=action.id))
    if not problems:
        cycle = _find_cycle(actions)
        if cycle:
            culprit = next(a for a in actions if a.id == cycle[0])
            problems.append(Problem("dependency cycle: " + " -> ".join(cycle),
                                    culprit.origin.path, culprit.origin.line))
    if problems:
        raise ConfigError(problems)
    return actions


def _find_cycle(actions: tuple[Action, ...]) -> list[str] | None:
    """A cycle in requires/notify edges (both mean 'before'), or None."""
    edges: dict[str, list[str]] = {a.id: [] for a in actions}
    for action in actions:
        for ref in action.requires:
            edges[ref].append(action.id)
        for notify in action.notify:
            edges[action.id].append(notify.target)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in edges:
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


# ---------------------------------------------------------------- actions


def _check_node_path(raw: str) -> str:
    """An absolute path on the node, in canonical form: one spelling per file, so two
    actions on the same file always collide by id (`/etc//x` or `/etc/./x` is refused)."""
    if "\0" in raw:
        raise ValueError(f"path {raw!r} contains a NUL byte")
    if not raw.startswith("/"):
        raise ValueError(f"path {raw!r} must be absolute")
    if ".." in raw.split("/"):
        raise ValueError(f"path {raw!r} must not contain '..'")
    canonical = "/" + "/".join(part for part in raw.split("/") if part not in ("", "."))
    if raw != canonical:
        raise ValueError(f"path {raw!r} is not in canonical form: write {canonical!r}")
    return raw


def _mode(raw: str | None) -> int | None:
    return int(raw, 8) if raw is not None else None


def _notify(raw: str) -> tuple[Notify, ...]:
    result = []
    for word in raw.split():
        kind, _, rest = word.partition(":")
        if kind == "service":
            name, _, verb = rest.rpartition(":")
            if verb in ("reload", "restart") and name:
                result.append(Notify(target=f"service:{name}", verb=verb))  # type: ignore[arg-type]
            else:
                result.append(Notify(target=f"service:{rest}", verb="restart"))
        elif kind == "command" and rest:
            result.append(Notify(target=word, verb="run"))
        else:
            raise ValueError(f"notify target {word!r} must be service:NAME[:reload|:restart] "
                             "or command:NAME")
    return tuple(result)


def _template_ref(raw: str | None, what: str) -> str | None:
    return None if raw is None else clean_relpath(raw, what)


_ACTION_MODELS: dict[str, type[Action]] = {
    "file": FileAction,
    "tree": TreeAction,
    "directory": DirectoryAction,
    "symlink": SymlinkAction,
    "package": PackageAction,
    "service": ServiceAction,
    "command": CommandAction,
}


def _parse_action(
    doc: xmlload.XmlDoc, element: etree._Element, cls: str, problems: list[Problem]
) -> Action | None:
    """One action element → its model; any problem is recorded at the element's line."""
    kind = str(element.tag)
    model = _ACTION_MODELS.get(kind)
    if model is None:
        problems.append(doc.problem(element, f"unknown element <{kind}>"))
        return None
    try:
        severity = element.get("severity")
        fields: dict[str, Any] = {
            "kind": kind,
            "severity": Severity.parse(severity) if severity else DEFAULT_SEVERITY[kind],
            "requires": tuple(element.get("requires", "").split()),
            "notify": _notify(element.get("notify", "")),
            "origin": _origin(doc, element),
            "declared_in": cls,
            **_KIND_FIELDS[kind](element),
        }
        action: Action = model.model_validate(fields)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                           for e in exc.errors())
        problems.append(doc.problem(element, f"<{kind}>: {detail}"))
        return None
    except ValueError as exc:
        problems.append(doc.problem(element, f"<{kind}>: {exc}"))
        return None
    if action.id in action.requires:
        problems.append(doc.problem(element, f"{action.id} requires itself"))
    return action


def _ownership(element: etree._Element) -> dict[str, Any]:
    return {"owner": element.get("owner"), "group": element.get("group")}


def _file_fields(element: etree._Element) -> dict[str, Any]:
    path = _check_node_path(element.get("path", ""))
    content = element.find("content")
    fields: dict[str, Any] = {
        "id": f"file:{path}", "path": path, "ensure": element.get("ensure", "present"),
        "template": _template_ref(element.get("template"), "template"),
        "source": _template_ref(element.get("source"), "source"),
        "content": (content.text or "") if content is not None else None,
        "mode": _mode(element.get("mode")), "validate_cmd": element.get("validate"),
        "secret": element.get("secret") == "true", **_ownership(element),
    }
    if fields["ensure"] == "present" and all(
            fields[k] is None for k in ("template", "source", "content")):
        raise ValueError("a present file needs template=, source= or <content>")
    if fields["validate_cmd"] is not None:
        if "%s" not in fields["validate_cmd"]:
            raise ValueError("validate= must contain %s (the new file's path)")
        _check_shell(fields["validate_cmd"], "validate")
    return fields


def _check_shell(command: str, attribute: str) -> None:
    """Refuse a shell command whose quoting is broken: it could only fail on the node."""
    try:
        shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"{attribute}= is not a valid shell command: {exc}") from None


def _tree_fields(element: etree._Element) -> dict[str, Any]:
    path = _check_node_path(element.get("path", ""))
    return {
        "id": f"tree:{path}", "path": path,
        "source": clean_relpath(element.get("source", ""), "source"),
        "mode": _mode(element.get("mode")), "dir_mode": _mode(element.get("dir-mode")),
        "secret": element.get("secret") == "true", **_ownership(element),
    }


def _directory_fields(element: etree._Element) -> dict[str, Any]:
    path = _check_node_path(element.get("path", ""))
    return {"id": f"directory:{path}", "path": path, "ensure": element.get("ensure", "present"),
            "mode": _mode(element.get("mode")), **_ownership(element)}


def _symlink_fields(element: etree._Element) -> dict[str, Any]:
    path = _check_node_path(element.get("path", ""))
    ensure = element.get("ensure", "present")
    target = element.get("target", "")
    if ensure == "present" and not target:
        raise ValueError("a present symlink needs target=")
    if "\0" in target:
        raise ValueError("symlink target contains a NUL byte")
    return {"id": f"symlink:{path}", "path": path, "target": target, "ensure": ensure,
            **_ownership(element)}


def _package_fields(element: etree._Element) -> dict[str, Any]:
    name = element.get("name", "")
    return {"id": f"package:{name}", "name": name, "ensure": element.get("ensure", "present"),
            "version": element.get("version"), "deb": _template_ref(element.get("deb"), "deb")}


def _service_fields(element: etree._Element) -> dict[str, Any]:
    name = element.get("name", "")
    state = element.get("state", "running")
    enabled = element.get("enabled")
    backend = element.get("backend", "systemd")
    commands = None
    if backend == "command":
        commands = {str(child.tag).replace("-", "_"): (child.text or "").strip()
                    for child in element if isinstance(child.tag, str)}
    return {"id": f"service:{name}", "name": name,
            "state": None if state == "unmanaged" else state,
            "enabled": None if enabled is None else enabled == "true",
            "backend": backend, "commands": commands}


def _command_fields(element: etree._Element) -> dict[str, Any]:
    name = element.get("name", "")
    creates = element.get("creates")
    cwd = element.get("cwd")
    for attribute in ("run", "unless", "onlyif"):
        command = element.get(attribute)
        if command is not None:
            _check_shell(command, attribute)
    timeout = float(element.get("timeout", "300"))
    if timeout > MAX_POLICY_SECONDS:
        raise ValueError(f"timeout is too large (at most {MAX_POLICY_SECONDS}s)")
    return {
        "id": f"command:{name}", "name": name, "run": element.get("run", ""),
        "creates": _check_node_path(creates) if creates is not None else None,
        "unless": element.get("unless"), "onlyif": element.get("onlyif"),
        "refresh_only": element.get("refresh-only") == "true",
        "timeout": timeout,
        "cwd": _check_node_path(cwd) if cwd is not None else None,
        "env": tuple((env.get("name", ""), env.text or "")
                     for env in element.iterchildren("env")),
    }


_KIND_FIELDS: dict[str, Callable[[etree._Element], dict[str, Any]]] = {
    "file": _file_fields,
    "tree": _tree_fields,
    "directory": _directory_fields,
    "symlink": _symlink_fields,
    "package": _package_fields,
    "service": _service_fields,
    "command": _command_fields,
}
