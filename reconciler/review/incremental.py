"""Plan only what a change touches: which nodes, and which of their files, must be
rendered again to compare two revisions, given the base's dependency records.

Every other node is proven unchanged: its compiled config is made from the same
fleet.xml declarations (compared by value, node by node) and the same class and carried
files, and each file from the same templates, sources and inventory, so it renders the
same at both revisions. Anything this cannot account for — a change outside fleet.xml,
classes/ and templates/, an XML file that is not a class, a symlink under templates/ or
classes/, a node without a record or with a problem at the base — is rendered.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from reconciler.compile.inventory import (
    CLASSES_DIR,
    FLEET_FILE,
    TEMPLATES_DIR,
    Block,
    Fleet,
    Layer,
    NodeDecl,
)
from reconciler.git import Git
from reconciler.render.deps import INVENTORY
from reconciler.review.records import NodeRecord

_SYMLINK = "120000"
_SUBSETS = [tuple(i for i in range(3) if mask & (1 << i)) for mask in range(8)]


@dataclass(frozen=True)
class Work:
    """What to render: node → the ids of the actions to render at both revisions, or
    None for the whole node (compiled at both)."""

    nodes: dict[str, frozenset[str] | None]


def changed_paths(repo: str, base: str, head: str) -> tuple[set[str], bool] | None:
    """Repo paths that differ between two commits, and whether a symlink is among them
    or under templates/ or classes/ at either (links make paths alias); None when git
    cannot say."""
    git = Git(repo)
    done = git.run("diff-tree", "-r", "--no-renames", "-z", base, head)
    if not done.ok:
        return None
    fields = done.stdout.split(b"\0")
    paths: set[str] = set()
    linked = False
    for meta, path in zip(fields[::2], fields[1::2], strict=False):
        old_mode, new_mode = meta.decode().lstrip(":").split()[:2]
        linked |= _SYMLINK in (old_mode, new_mode)
        paths.add(path.decode("utf-8", "surrogateescape"))
    for commit in (base, head):
        listing = git.run("ls-tree", "-r", "-z", commit, "--", TEMPLATES_DIR, CLASSES_DIR)
        if not listing.ok:
            return None
        linked |= any(entry.startswith(_SYMLINK.encode()) for entry in
                      listing.stdout.split(b"\0"))
    return paths, linked


def _layer_value(layer: Layer | None) -> list[object]:
    if layer is None:
        return []
    return [(d.name, d.value, d.secret) for d in layer.decls]


class _Signatures:
    """What each node's compiled config takes from fleet.xml, as one digest per node."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.common = _digest([fleet.domain, _layer_value(fleet.defaults),
                               sorted(fleet.default_policy.items())])
        self.blocks: dict[frozenset[tuple[str, str]], list[Block]] = defaultdict(list)
        for block in sorted(fleet.blocks, key=lambda b: b.specificity):
            self.blocks[frozenset(block.selector.items())].append(block)
        self._block_values: dict[int, str] = {}
        self._groups: dict[tuple[str, str, str], str] = {}
        # By range layer and policy (the entry keeps the declaration, so the ids stay theirs).
        self._ranges: dict[tuple[str, int, int], tuple[NodeDecl, str]] = {}

    def of(self, name: str) -> str:
        decl = self.fleet.nodes[name]
        node = decl.name
        group = self._group(node.cls, node.product, node.cluster)
        if decl.node_layer is not None or decl.node_policy:
            return _digest([group, _layer_value(decl.range_layer),
                            sorted(decl.range_policy.items()), _layer_value(decl.node_layer),
                            sorted(decl.node_policy.items())])
        # The nodes of a range share its layer and policy: one digest for them all.
        key = (group, id(decl.range_layer), id(decl.range_policy))
        found = self._ranges.get(key)
        if found is None:
            found = (decl, _digest([group, _layer_value(decl.range_layer),
                                    sorted(decl.range_policy.items()), [], []]))
            self._ranges[key] = found
        return found[1]

    def _group(self, cls: str, product: str, cluster: str) -> str:
        """What the nodes of a class, product and cluster take from fleet.xml alike."""
        found = self._groups.get((cls, product, cluster))
        if found is None:
            wanted = [("class", cls), ("product", product), ("cluster", cluster)]
            matching: list[Block] = []
            for subset in _SUBSETS:
                matching += self.blocks.get(frozenset(wanted[i] for i in subset), [])
            matching.sort(key=lambda b: b.specificity)
            found = self._groups[cls, product, cluster] = _digest(
                [self.common, [self._block(b) for b in matching], list(self.fleet.chain(cls))])
        return found

    def _block(self, block: Block) -> str:
        found = self._block_values.get(id(block))
        if found is None:
            found = _digest([sorted(block.selector.items()), _layer_value(block.layer)])
            self._block_values[id(block)] = found
        return found


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, default=repr, sort_keys=True).encode()).hexdigest()


def matches(dep: str, changed: Collection[str]) -> bool:
    """Whether a dependency (a path, or a directory ending in /) is among changed paths."""
    if dep.endswith("/"):
        return any(path.startswith(dep) for path in changed)
    return dep in changed


def plan_work(base: Fleet, head: Fleet, changed: set[str], linked: bool,
              records: Mapping[str, NodeRecord]) -> Work | None:
    """The nodes present at both revisions that must be rendered again (nodes added at
    head are always rendered); None when only a full plan can tell."""
    if linked:
        return None
    class_files = {c.path for f in (base, head) for c in f.classes.values()}
    for path in changed:
        if path == FLEET_FILE or path in class_files or path.startswith(f"{TEMPLATES_DIR}/"):
            continue
        if path.startswith(f"{CLASSES_DIR}/") and not path.endswith(".xml"):
            continue  # not loaded: classes/ holds <name>.xml files only
        return None
    if set(base.nodes) != set(head.nodes):
        changed = {*changed, INVENTORY}
    fleet_changed = FLEET_FILE in changed
    signatures = (_Signatures(base), _Signatures(head)) if fleet_changed else None
    work: dict[str, frozenset[str] | None] = {}
    touched: dict[NodeRecord, frozenset[str] | None] = {}  # nodes share records
    for name in head.nodes:
        if name not in base.nodes:
            continue
        record = records.get(name)
        if record is None or not record.ok or (
                signatures is not None and signatures[0].of(name) != signatures[1].of(name)):
            work[name] = None
            continue
        if record not in touched:
            touched[record] = _touched(record, changed)
        found = touched[record]
        if found is None or found:
            work[name] = found
    return Work(work)


def _touched(record: NodeRecord, changed: set[str]) -> frozenset[str] | None:
    """None when a node's compiled config may change, else the actions whose files may."""
    if any(matches(dep, changed) for dep in record.compiled):
        return None
    return frozenset(action for action, deps in record.actions
                     if any(matches(dep, changed) for dep in deps))
