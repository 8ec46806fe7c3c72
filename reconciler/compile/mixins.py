"""Mixins: `<include class="monitoring-agent"/>` beside a class's single `inherits` chain.

A class's *level* is what it contributes to the chain: the variables and actions of
each class it includes (in include order, each with its own includes first), then its
own. So variables resolve defaults → for each class of the chain, general first: its
mixins, then the class itself → `<vars>` blocks → the node; a class always overrides
its mixins, and a mixin included by `proxy` overrides `base`. Two mixins of one class
that set the same variable, or declare the same action, differently are an error
unless that class sets or declares it itself (the same declaration reached twice, a
mixin included through two others, is no conflict). A mixin has no parent and no
policy of its own: those belong to the chain. Cycles, unknown classes and including an
ancestor are refused at the `<include>` line.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from reconciler.compile import xmlload
from reconciler.compile.inventory import CLASSES_DIR, ClassDecl, Fleet, Include, Layer, Pattern
from reconciler.compile.nodeconfig import Action, Origin
from reconciler.errors import Problem


@dataclass(frozen=True)
class Entry:
    """An action (or for-each pattern) of a level; `via` is the include path it came
    through, outermost first (empty: the class's own), `through` the `<include>` of
    the level's class it came through."""

    item: Action | Pattern
    via: tuple[str, ...] = ()
    through: Include | None = None


@dataclass(frozen=True)
class Source:
    """A class whose variables a level carries, and the include path it came through."""

    cls: str
    via: tuple[str, ...] = ()
    through: Include | None = None


@dataclass(frozen=True)
class Level:
    """What one class contributes to a chain: its sources and their variable layers,
    general first, and its entries in order."""

    sources: tuple[Source, ...]
    layers: tuple[Layer, ...]
    entries: tuple[Entry, ...]


def parse_includes(
    doc: xmlload.XmlDoc, root: etree._Element, problems: list[Problem]
) -> list[Include]:
    found: list[Include] = []
    for element in root.iterchildren("include"):
        include = Include(element.get("class", ""), doc.origin(element))
        if any(other.cls == include.cls for other in found):
            problems.append(doc.problem(element, f"class {include.cls!r} is included twice"))
            continue
        found.append(include)
    return found


def check_mixins(
    classes: dict[str, ClassDecl], broken: set[str], problems: list[Problem]
) -> None:
    """Every include names a class that can be a mixin, and no include loops back. A
    class with a bad include is dropped, with every class that inherits or includes it."""
    count = len(problems)
    bad: set[str] = set()
    for decl in classes.values():
        ancestors = _ancestors(classes, decl.name)
        for include in decl.includes:
            where = (include.origin.path, include.origin.line)
            target = classes.get(include.cls)
            before = len(problems)
            if include.cls == decl.name:
                continue  # a cycle of one, reported with the others
            if target is None:
                bad.add(decl.name)
                if include.cls not in broken:
                    problems.append(Problem(f"class {decl.name!r} includes unknown class "
                                            f"{include.cls!r} (no {CLASSES_DIR}/{include.cls}"
                                            ".xml)", *where))
            elif include.cls in ancestors:
                problems.append(Problem(f"class {decl.name!r} includes {include.cls!r}, which "
                                        "it already inherits", *where))
            elif target.inherits is not None:
                problems.append(Problem(f"class {include.cls!r} inherits {target.inherits!r}, "
                                        "so it cannot be included as a mixin", *where))
            elif target.policy:
                problems.append(Problem(f"class {include.cls!r} sets a policy, so it cannot be "
                                        "included as a mixin (policy belongs to the chain)",
                                        *where))
            if len(problems) > before:
                bad.add(decl.name)
    bad |= _check_cycles(classes, problems)
    if len(problems) == count and not bad:
        return
    while True:
        reaching = {name for name, decl in classes.items() if name not in bad and (
            decl.inherits in bad or any(i.cls in bad for i in decl.includes))}
        if not reaching:
            break
        bad |= reaching
    for name in bad:
        del classes[name]


def _ancestors(classes: dict[str, ClassDecl], name: str) -> set[str]:
    found: set[str] = set()
    current = classes[name].inherits
    while current is not None and current in classes and current not in found:
        found.add(current)
        current = classes[current].inherits
    return found


def _check_cycles(classes: dict[str, ClassDecl], problems: list[Problem]) -> set[str]:
    """Each include cycle once, at the `<include>` that closes it; the classes on one."""
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for include in classes[name].includes:
            if include.cls not in classes:
                continue
            if state.get(include.cls) == 1:
                loop = path[path.index(include.cls):]
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    problems.append(Problem("class include cycle: "
                                            + " -> ".join([*loop, include.cls]),
                                            include.origin.path, include.origin.line))
            elif include.cls not in state:
                visit(include.cls, [*path, include.cls])
        state[name] = 2

    for name in classes:
        if name not in state:
            visit(name, [name])
    return {name for loop in reported for name in loop}


def level(fleet: Fleet, cls: str) -> Level:
    """What class `cls` contributes to a chain, with its mixins (cached per fleet)."""
    found: Level | None = fleet._levels.get(cls)
    if found is not None:
        return found
    decl = fleet.classes[cls]
    sources: list[Source] = []
    entries: list[Entry] = []
    for include in decl.includes:
        inner = level(fleet, include.cls)
        sources += [Source(s.cls, (cls, *s.via), include) for s in inner.sources]
        entries += [Entry(e.item, (cls, *e.via), include) for e in inner.entries]
    sources.append(Source(cls))
    entries += [Entry(item) for item in _in_order(decl)]
    layers = tuple(
        fleet.classes[s.cls].layer if not s.via else
        Layer(f"mixin {s.cls} (via {' > '.join(s.via)})", fleet.classes[s.cls].layer.decls)
        for s in sources)
    found = Level(tuple(sources), layers, tuple(entries))
    fleet._levels[cls] = found
    return found


def _in_order(decl: ClassDecl) -> list[Action | Pattern]:
    """A class's own actions and patterns in declaration order."""
    ordered: list[Action | Pattern] = []
    pending = sorted(decl.patterns, key=lambda p: p.position)
    for index, action in enumerate(decl.actions):
        while pending and pending[0].position == index:
            ordered.append(pending.pop(0))
        ordered.append(action)
    return ordered + pending


def check_variables(fleet: Fleet, cls: str, problems: list[Problem]) -> None:
    """Two mixins of `cls` setting one variable differently, unless `cls` sets it."""
    found = level(fleet, cls)
    own = {d.name for d in fleet.classes[cls].layer.decls}
    setters: dict[str, tuple[Origin, Source]] = {}
    for source, layer in zip(found.sources, found.layers, strict=True):
        if source.through is None:
            continue
        for var in layer.decls:
            first = setters.get(var.name)
            if var.name in own or (first is not None and first[0] == var.origin):
                continue
            if first is not None and first[1].through != source.through:
                where = source.through.origin
                problems.append(Problem(
                    f"variable {var.name!r} is set by mixins {first[1].cls!r} (at {first[0]}) "
                    f"and {source.cls!r} (at {var.origin}): set it in class {cls!r} to choose",
                    where.path, where.line))
                continue
            setters[var.name] = (var.origin, source)
