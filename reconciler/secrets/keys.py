"""Public keys in the config repo: each node's age recipient and the operators'.

    keys/nodes/<node-name>/age.pub      the node's age recipient (one line)
    keys/nodes/<node-name>/signing.pub  the node's SSH signing key (fleet reports)
    keys/admins/<name>.age.pub          an operator's age recipient

Only public keys live here. `reconciler bootstrap` prints the lines to add for a new
node; an operator makes a key with `age-keygen`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reconciler.compile import names
from reconciler.errors import Problem
from reconciler.secrets.age import AgeError, check_recipient
from reconciler.secrets.sealed import Recipient
from reconciler.source.snapshot import Snapshot

KEYS_DIR = "keys"
NODES_DIR = f"{KEYS_DIR}/nodes"
ADMINS_DIR = f"{KEYS_DIR}/admins"
NODE_AGE_KEY = "age.pub"
ADMIN_SUFFIX = ".age.pub"
_ADMIN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def node_key_path(node: str) -> str:
    return f"{NODES_DIR}/{node}/{NODE_AGE_KEY}"


def admin_key_path(name: str) -> str:
    return f"{ADMINS_DIR}/{name}{ADMIN_SUFFIX}"


@dataclass
class KeyRing:
    """The age recipients the repo declares, and what is wrong with its key files."""

    nodes: dict[str, str] = field(default_factory=dict)  # node name -> age1…
    admins: dict[str, str] = field(default_factory=dict)  # admin name -> age1…
    problems: list[Problem] = field(default_factory=list)

    @property
    def in_use(self) -> bool:
        """Whether the repo encrypts its secrets (any age key): then a plain secret value
        is an error."""
        return bool(self.nodes or self.admins)

    def admin_recipients(self) -> list[Recipient]:
        return [Recipient("admin", name, key) for name, key in sorted(self.admins.items())]


def _read_key(snapshot: Snapshot, path: str, ring: KeyRing) -> str | None:
    try:
        text = snapshot.read(path).decode("utf-8")
    except UnicodeDecodeError:
        ring.problems.append(Problem("not UTF-8 text", path, 1))
        return None
    lines = [line for line in text.splitlines() if line.strip() and
             not line.lstrip().startswith("#")]
    if len(lines) != 1:
        ring.problems.append(Problem("must hold exactly one age recipient line (age1…)", path))
        return None
    try:
        return check_recipient(lines[0])
    except AgeError as exc:
        number = text.splitlines().index(lines[0]) + 1
        ring.problems.append(Problem(str(exc), path, number))
        return None


def load(snapshot: Snapshot, fleet_nodes: set[str] | None = None) -> KeyRing:
    """Every key under keys/; problems for bad syntax, badly named entries, and (given
    `fleet_nodes`) keys of nodes the fleet does not have."""
    ring = KeyRing()
    for entry in snapshot.listdir(NODES_DIR):
        where = f"{NODES_DIR}/{entry}"
        try:
            names.parse(entry)
        except names.NodeNameError as exc:
            ring.problems.append(Problem(f"not a node name: {exc}", where))
            continue
        if not snapshot.is_dir(where):
            ring.problems.append(Problem("must be a directory holding the node's keys", where))
            continue
        if not snapshot.listdir(where):
            continue  # an empty directory: git does not even keep it
        if fleet_nodes is not None and entry not in fleet_nodes:
            ring.problems.append(Problem(f"keys of {entry}, which is not a node of the fleet "
                                         f"(remove {where}/ when a node leaves)", where))
            continue
        path = f"{where}/{NODE_AGE_KEY}"
        if snapshot.is_file(path):
            key = _read_key(snapshot, path, ring)
            if key is not None:
                ring.nodes[entry] = key
    for entry in snapshot.listdir(ADMINS_DIR):
        path = f"{ADMINS_DIR}/{entry}"
        if not entry.endswith(ADMIN_SUFFIX) or not snapshot.is_file(path):
            ring.problems.append(Problem(f"expected files named NAME{ADMIN_SUFFIX}", path))
            continue
        name = entry[: -len(ADMIN_SUFFIX)]
        if not _ADMIN_NAME_RE.match(name):
            ring.problems.append(Problem(f"bad admin name {name!r} (letters, digits, . _ -)",
                                         path))
            continue
        key = _read_key(snapshot, path, ring)
        if key is not None:
            ring.admins[name] = key
    _check_shared(ring)
    return ring


def _check_shared(ring: KeyRing) -> None:
    """Two nodes (or a node and an operator) sharing one key would read each other's
    secrets: refuse it."""
    owners: dict[str, list[str]] = {}
    for node, key in ring.nodes.items():
        owners.setdefault(key, []).append(f"node {node}")
    for admin, key in ring.admins.items():
        owners.setdefault(key, []).append(f"admin {admin}")
    for key, who in owners.items():
        if len(who) > 1:
            ring.problems.append(Problem(f"one age key ({key[:12]}…) is shared by "
                                         f"{', '.join(sorted(who))}: each needs its own",
                                         KEYS_DIR))
