"""How a change to the config repo changes its secrets, for `reconciler plan`, without
decrypting: a new value (its value id changed) or new recipients (nodes that gain or
lose the ability to read it, keys rotated)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from reconciler.compile.inventory import Fleet
from reconciler.secrets.audience import declarations
from reconciler.secrets.check import nodes_text
from reconciler.secrets.sealed import Recipient, Sealed


class SecretChange(BaseModel):
    """One ciphertext that differs between base and head: `secret changed`,
    `recipients changed: +3 nodes (…)`, `new secret` or `secret removed`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    variable: str
    change: str


def describe_recipients(old: Iterable[Recipient], new: Iterable[Recipient]) -> str:
    """`recipients changed: +3 nodes (…), -1 node (…), +admin bob, 1 key(s) rotated (…)`."""
    before = {(r.kind, r.name): r.key for r in old}
    after = {(r.kind, r.name): r.key for r in new}
    gained, lost = after.keys() - before.keys(), before.keys() - after.keys()
    parts = []
    for sign, who in (("+", gained), ("-", lost)):
        nodes = [name for kind, name in who if kind == "node"]
        if nodes:
            parts.append(f"{sign}{nodes_text(nodes)}")
    for sign, who in (("+", gained), ("-", lost)):
        parts += [f"{sign}admin {name}" for kind, name in sorted(who) if kind == "admin"]
    rotated = sorted(f"{kind} {name}" for (kind, name) in before.keys() & after.keys()
                     if before[(kind, name)] != after[(kind, name)])
    if rotated:
        parts.append(f"{len(rotated)} key(s) rotated ({', '.join(rotated)})")
    return "recipients changed: " + ", ".join(parts)


def _sealed(fleet: Fleet | None) -> dict[str, tuple[str, Sealed]]:
    if fleet is None:
        return {}
    return {item.sealed.path: (item.decl.name, item.sealed) for item in declarations(fleet)
            if item.sealed is not None}


def compare_secrets(base: Fleet | None, head: Fleet) -> tuple[SecretChange, ...]:
    """Every ciphertext whose value or recipients differ between the two revisions."""
    old, new = _sealed(base), _sealed(head)
    changes = []
    for path in sorted(old.keys() | new.keys()):
        if path not in new:
            changes.append(SecretChange(path=path, variable=old[path][0], change="secret removed"))
            continue
        name, now = new[path]
        if path not in old:
            readers = now.nodes()
            changes.append(SecretChange(path=path, variable=name, change="new secret, readable "
                                        f"by {nodes_text(readers) if readers else 'no node'}"))
            continue
        was = old[path][1]
        notes = []
        if was.value_id != now.value_id:
            notes.append("secret changed")
        if set(was.recipients) != set(now.recipients):
            notes.append(describe_recipients(was.recipients, now.recipients))
        if notes:
            changes.append(SecretChange(path=path, variable=name, change="; ".join(notes)))
    return tuple(changes)
