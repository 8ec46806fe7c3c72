"""What `reconciler secret set`, `rekey` and `migrate` change in a config repo's working tree.

Each works the same way: edit the XML and write provisional ciphertexts (readable by
the admins only) into an in-memory overlay, compile the fleet as it will be, find who
needs each value (`audience`), encrypt to exactly them and the admins, and only then
write the files. Any problem refuses the whole operation and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyrage import x25519

from reconciler.compile.compiler import load_fleet
from reconciler.compile.inventory import FLEET_FILE, Fleet, Layer
from reconciler.errors import ConfigError, Problem, UsageError
from reconciler.secrets import keys, xmledit
from reconciler.secrets.age import AgeError, decrypt, encrypt
from reconciler.secrets.audience import Declaration, audiences, declarations, selector_slug
from reconciler.secrets.check import nodes_text
from reconciler.secrets.overlay import Overlay
from reconciler.secrets.plan import describe_recipients
from reconciler.secrets.sealed import (
    SECRETS_DIR,
    Recipient,
    Sealed,
    format_recipients,
    new_value_id,
    recipients_path,
)
from reconciler.source.snapshot import WorkTree


@dataclass
class Outcome:
    """What an operation did: one line per ciphertext, and the files it wrote."""

    lines: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Value:
    """A value to (re-)encrypt at `path`, and the id it keeps or gets."""

    path: str
    plaintext: bytes
    value_id: str


def _open(repo: str) -> tuple[Overlay, Fleet, keys.KeyRing]:
    tree = WorkTree(repo)
    fleet = load_fleet(tree)
    ring = keys.load(tree, set(fleet.nodes))
    if ring.problems:
        raise ConfigError(ring.problems)
    if not ring.admins:
        raise UsageError.because(
            f"no admin key in {keys.ADMINS_DIR}/: add yours first (age-keygen -o admin.key; "
            f"age-keygen -y admin.key > {keys.ADMINS_DIR}/NAME{keys.ADMIN_SUFFIX})")
    return Overlay(tree), fleet, ring


def _seal(overlay: Overlay, value: _Value, recipients: list[Recipient]) -> None:
    ciphertext = encrypt(value.plaintext, [r.key for r in recipients])
    overlay.write(value.path, ciphertext)
    overlay.write(recipients_path(value.path),
                  format_recipients(value.path, ciphertext, recipients, value.value_id))


def _seal_for_audience(overlay: Overlay, ring: keys.KeyRing, values: list[_Value]) -> Outcome:
    """Encrypt each value to the nodes that need it (compiled from the overlay, where the
    values are provisionally sealed to the admins) and the admins; then write it all."""
    for value in values:
        _seal(overlay, value, ring.admin_recipients())
    needed = audiences(load_fleet(overlay))
    keyless = sorted({n for v in values for n in needed.get(v.path, ()) if n not in ring.nodes})
    if keyless:
        raise UsageError.because(
            f"no age key for {nodes_text(keyless)} needing these secrets: bootstrap them "
            f"(`reconciler bootstrap`) and add {keys.NODES_DIR}/NODE/{keys.NODE_AGE_KEY}")
    outcome = Outcome()
    for value in values:
        nodes = sorted(needed.get(value.path, ()))
        recipients = [*(Recipient("node", n, ring.nodes[n]) for n in nodes),
                      *ring.admin_recipients()]
        _seal(overlay, value, recipients)
        readers = nodes_text(nodes) if nodes else "no node yet"
        outcome.lines.append(f"{value.path}: encrypted to {readers} and "
                             f"{len(ring.admins)} admin(s)")
    outcome.written = overlay.commit()
    return outcome


def _target_layers(fleet: Fleet, target: xmledit.Target) -> list[Layer]:
    if target.node is not None:
        decl = fleet.nodes.get(target.node)
        if decl is None:
            raise UsageError.because(f"unknown node {target.node!r}")
        return [decl.node_layer] if decl.node_layer is not None else []
    if not target.selector:
        return [fleet.defaults]
    return [b.layer for b in fleet.blocks if b.selector == target.selector]


def set_secret(repo: str, name: str, target: xmledit.Target, plaintext: bytes) -> Outcome:
    """Give variable `name` the encrypted value `plaintext` at `target`'s layer."""
    overlay, fleet, ring = _open(repo)
    layers = _target_layers(fleet, target)
    existing = next((d for layer in layers for d in layer.decls if d.name == name), None)
    slug = f"node={target.node}" if target.node is not None else selector_slug(target.selector)
    if existing is not None and isinstance(existing.value, Sealed):
        path = existing.value.path
    else:
        path = f"{SECRETS_DIR}/{name}/{slug}.age"
        element = xmledit.encrypted_var(name, path)
        if existing is not None:
            origin = existing.origin
            text = overlay.read(origin.path).decode()
            overlay.write(origin.path, xmledit.replace_var(text, origin.line, name,
                                                           element).encode())
        else:
            text = overlay.read(FLEET_FILE).decode()
            overlay.write(FLEET_FILE, xmledit.add_var(text, target, element).encode())
    return _seal_for_audience(overlay, ring, [_Value(path, plaintext, new_value_id())])


def migrate(repo: str) -> Outcome:
    """Encrypt every plain-text value of a secret variable in place."""
    overlay, fleet, ring = _open(repo)
    found = list(declarations(fleet))
    secret_names = {d.decl.name for d in found if d.decl.secret}
    plain = [d for d in found if d.sealed is None and d.decl.name in secret_names]
    problems = [Problem(f"secret variable {d.decl.name!r} is a {type(d.decl.value).__name__}: "
                        f"only text values can be encrypted (split it into string variables)",
                        d.decl.origin.path, d.decl.origin.line)
                for d in plain if not isinstance(d.decl.value, str)]
    if problems:
        raise UsageError(problems)
    taken: set[str] = set()
    values: list[_Value] = []
    edits: list[tuple[Declaration, str]] = []
    for item in plain:
        path = _free_path(overlay, taken, item.decl.name, item.slug)
        values.append(_Value(path, str(item.decl.value).encode(), new_value_id()))
        edits.append((item, path))
    # Bottom-up within each file, so the lines of the edits still to come do not move.
    for item, path in sorted(edits, key=lambda e: (e[0].decl.origin.path, -e[0].decl.origin.line)):
        origin, name = item.decl.origin, item.decl.name
        text = overlay.read(origin.path).decode()
        element = xmledit.encrypted_var(name, path)
        overlay.write(origin.path, xmledit.replace_var(text, origin.line, name, element).encode())
    if not values:
        return Outcome(["no plain-text secret values: nothing to migrate"])
    return _seal_for_audience(overlay, ring, values)


def _free_path(overlay: Overlay, taken: set[str], name: str, slug: str) -> str:
    base = f"{SECRETS_DIR}/{name}/{slug}"
    path, number = f"{base}.age", 1
    while path in taken or overlay.is_file(path):
        number += 1
        path = f"{base}-{number}.age"
    taken.add(path)
    return path


def rekey(repo: str, identities: list[x25519.Identity]) -> Outcome:
    """Re-encrypt every ciphertext whose recipients are not exactly the nodes that need it
    (with their current keys) and the admins; say what changed for each."""
    overlay, fleet, ring = _open(repo)
    needed = audiences(fleet)
    outcome = Outcome()
    keyless: set[str] = set()
    changes: list[tuple[Sealed, list[Recipient], str]] = []
    for item in declarations(fleet):
        sealed = item.sealed
        if sealed is None:
            continue
        nodes = needed.get(sealed.path, set())
        keyless |= {n for n in nodes if n not in ring.nodes}
        wanted = [*(Recipient("node", n, ring.nodes[n]) for n in sorted(nodes) if n in ring.nodes),
                  *ring.admin_recipients()]
        if set(wanted) != set(sealed.recipients):
            changes.append((sealed, wanted, describe_recipients(sealed.recipients, wanted)))
    if keyless:
        raise UsageError.because(
            f"no age key for {nodes_text(keyless)} needing secrets: bootstrap them and add "
            f"{keys.NODES_DIR}/NODE/{keys.NODE_AGE_KEY}")
    if changes and not identities:
        raise UsageError.because(
            f"{len(changes)} secret(s) must be re-encrypted: give your admin identity "
            f"(--identity FILE) to decrypt them")
    for sealed, wanted, description in changes:
        try:
            plaintext = decrypt(sealed.ciphertext, identities)
        except AgeError as exc:
            raise UsageError.because(f"{sealed.path}: {exc} (are you one of its admins?)") \
                from None
        _seal(overlay, _Value(sealed.path, plaintext, sealed.value_id), wanted)
        outcome.lines.append(f"{sealed.path}: {description}")
    if not changes:
        outcome.lines.append("every secret is encrypted to exactly its recipients: "
                             "nothing to re-encrypt")
    outcome.written = overlay.commit()
    return outcome

