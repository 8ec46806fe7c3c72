"""What `validate` checks about secrets, without decrypting anything.

- every key file under keys/ is one valid age recipient, of a node of the fleet;
- once the repo has age keys, no secret variable has a plain-text value;
- every ciphertext parses, and is encrypted to exactly the nodes that use it (least
  privilege: a node that does not use it must not be able to read it) and the admins,
  with their current keys;
- no file under secrets/ is left over (encrypted to whoever it was, long ago).

Recipients are checked against the ciphertext's `.recipients` file (age hides who a
stanza is for), whose count of keys must match the ciphertext's header.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from reconciler.compile.inventory import Fleet
from reconciler.errors import Problem
from reconciler.review.names import compress_names, plural
from reconciler.secrets import keys
from reconciler.secrets.audience import Declaration, declarations
from reconciler.secrets.sealed import (
    CIPHER_SUFFIX,
    RECIPIENTS_SUFFIX,
    SECRETS_DIR,
    Sealed,
    recipients_path,
)
from reconciler.source.snapshot import Snapshot, files_under

REKEY = "run `reconciler secret rekey`"


def nodes_text(names: Iterable[str]) -> str:
    """`3 nodes (database-[01-03].tickets.chi1.sa)`: a count and the compressed names."""
    ordered = sorted(names)
    return f"{plural(len(ordered), 'node')} ({', '.join(compress_names(ordered))})"


def check_secrets(fleet: Fleet, usage: dict[str, set[str]],
                  unknown: Collection[str] = ()) -> list[Problem]:
    """Every secret problem of the fleet; `usage` maps a ciphertext path to the nodes
    whose templates read it (`audience.audiences`, or validate's workers); of the
    `unknown` nodes (a template that does not parse) it cannot be said whether they
    need a secret, so none is said to have one it does not use."""
    ring = keys.load(fleet.snapshot, set(fleet.nodes))
    problems = list(ring.problems)
    found = list(declarations(fleet))
    secret_names = {d.decl.name for d in found if d.decl.secret}
    by_path: dict[str, Declaration] = {}
    for item in found:
        sealed = item.sealed
        origin = item.decl.origin
        if sealed is None:
            if ring.in_use and item.decl.name in secret_names:
                problems.append(Problem(
                    f"secret variable {item.decl.name!r} has a plain-text value here: encrypt "
                    f"it (`reconciler secret migrate`, or `reconciler secret set`)",
                    origin.path, origin.line))
            continue
        first = by_path.setdefault(sealed.path, item)
        if first is not item:
            problems.append(Problem(f"{sealed.path} is already the value of "
                                    f"{first.decl.name!r} at {first.decl.origin}: each "
                                    f"encrypted value has its own file",
                                    origin.path, origin.line))
            continue
        problems += [Problem(f"secret variable {item.decl.name!r}: {message}", origin.path,
                             origin.line)
                     for message in recipient_problems(sealed, usage.get(sealed.path, set()),
                                                       ring, unknown)]
    if by_path and not ring.admins:
        problems.append(Problem(f"no admin key: add yours as {keys.ADMINS_DIR}/NAME"
                                f"{keys.ADMIN_SUFFIX} (age-keygen -y), or no one can rekey",
                                keys.ADMINS_DIR))
    problems += _leftovers(fleet.snapshot, set(by_path))
    return problems


def recipient_problems(sealed: Sealed, needed: set[str], ring: keys.KeyRing,
                       unknown: Collection[str] = ()) -> list[str]:
    """How `sealed`'s recipients differ from what they must be: the nodes that need it
    (with their current keys) and every admin; an `unknown` node may need it or not."""
    listed = {r.name: r.key for r in sealed.recipients if r.kind == "node"}
    admins = {r.name: r.key for r in sealed.recipients if r.kind == "admin"}
    messages = []
    keyless = {n for n in needed if n not in ring.nodes}
    if keyless:
        messages.append(f"used by {nodes_text(keyless)} without an age key: bootstrap them "
                        f"and add {keys.NODES_DIR}/NODE/{keys.NODE_AGE_KEY}")
    missing = needed - keyless - set(listed)
    if missing:
        messages.append(f"{sealed.path} is not encrypted to {nodes_text(missing)} using it; "
                        f"{REKEY}")
    extra = set(listed) - needed - set(unknown)
    if extra:
        messages.append(f"least privilege: {sealed.path} is encrypted to {nodes_text(extra)} "
                        f"not using it; {REKEY}")
    rotated = {n for n in set(listed) & needed if n in ring.nodes and listed[n] != ring.nodes[n]}
    if rotated:
        messages.append(f"{sealed.path} is encrypted to an old key of {nodes_text(rotated)}; "
                        f"{REKEY}")
    for name in sorted(set(ring.admins) - set(admins)):
        messages.append(f"admin {name} cannot read {sealed.path}; {REKEY}")
    for name in sorted(set(admins) - set(ring.admins)):
        messages.append(f"{sealed.path} is still readable by admin {name}, whose key is gone "
                        f"from {keys.ADMINS_DIR}; {REKEY}")
    for name in sorted(n for n in set(admins) & set(ring.admins) if admins[n] != ring.admins[n]):
        messages.append(f"{sealed.path} is encrypted to an old key of admin {name}; {REKEY}")
    return messages


def _leftovers(snapshot: Snapshot, used: set[str]) -> list[Problem]:
    """Files under secrets/ that no <var encrypted=…> names (nor is the recipients file of)."""
    problems = []
    expected = used | {recipients_path(p) for p in used}
    for path in files_under(snapshot, SECRETS_DIR):
        if path not in expected:
            what = "ciphertext" if path.endswith(CIPHER_SUFFIX) else \
                "recipients file" if path.endswith(RECIPIENTS_SUFFIX) else "file"
            problems.append(Problem(f"{what} that no <var encrypted=…> uses: remove it", path))
    return problems
