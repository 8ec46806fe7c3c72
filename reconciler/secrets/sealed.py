"""A secret value as the config repo holds it: an armored age file, and beside it the list
of who it is encrypted to.

    secrets/db_password/product=tickets.age          the ciphertext (`age -d` reads it)
    secrets/db_password/product=tickets.recipients   its recipients (`age -R` reads it)

The recipients file is an age recipients file whose comments carry what age cannot
say: which node or operator each key belongs to, a value id that changes only when
the value does (so a plan tells a new password from a re-encryption), and the sha256
of the ciphertext it describes.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from reconciler.secrets.age import AgeError, check_recipient, read_header
from reconciler.source.snapshot import Snapshot, clean_relpath

SECRETS_DIR = "secrets"
CIPHER_SUFFIX = ".age"
RECIPIENTS_SUFFIX = ".recipients"
_LABEL_RE = re.compile(r"^#\s*(node|admin)\s+(\S+)\s*$")
_META_RE = re.compile(r"^#\s*(value-id|sha256):\s*([0-9a-f]+)\s*$")

Kind = Literal["node", "admin"]


@dataclass(frozen=True, order=True)
class Recipient:
    """One key a ciphertext is encrypted to, and whose it is."""

    kind: Kind
    name: str
    key: str


@dataclass(frozen=True)
class Sealed:
    """An encrypted variable value: never the plain text, which only a recipient's
    identity recovers (`unseal`)."""

    path: str  # secrets/<var>/<layer>.age
    ciphertext: bytes
    recipients: tuple[Recipient, ...]
    value_id: str  # random, renewed by `secret set`, kept by `secret rekey`

    @property
    def placeholder(self) -> str:
        """What `validate` and `plan` render instead of the value: it changes exactly when
        the value may have (a ciphertext replaced outside reconciler counts as new), and
        it is one plain word, safe in a shell script or a config file."""
        return f"ENCRYPTED-{self.value_id}"

    def nodes(self) -> frozenset[str]:
        return frozenset(r.name for r in self.recipients if r.kind == "node")

    def __repr__(self) -> str:
        # No ciphertext in logs; the value id, so a digest of variables (an incremental
        # plan's) changes when the value does.
        return f"Sealed({self.path!r}, {self.value_id!r})"


def recipients_path(cipher_path: str) -> str:
    return cipher_path[: -len(CIPHER_SUFFIX)] + RECIPIENTS_SUFFIX


def check_path(path: str) -> str:
    """A ciphertext path as `encrypted=` may name it: under secrets/, ending in .age."""
    clean = clean_relpath(path, "encrypted")
    if not clean.startswith(f"{SECRETS_DIR}/") or not clean.endswith(CIPHER_SUFFIX) \
            or clean == f"{SECRETS_DIR}/{CIPHER_SUFFIX}":
        raise ValueError(f"encrypted={path!r} must name a file secrets/…/NAME.age")
    return clean


def new_value_id() -> str:
    return secrets.token_hex(8)


def format_recipients(cipher_path: str, ciphertext: bytes, recipients: list[Recipient],
                      value_id: str) -> bytes:
    """The recipients file of a ciphertext written by reconciler."""
    lines = [
        f"# Recipients of {posixpath.basename(cipher_path)}, written by `reconciler secret`.",
        "# An age recipients file (age -R reads it); the comments say whose each key is.",
        f"# value-id: {value_id}",
        f"# sha256: {hashlib.sha256(ciphertext).hexdigest()}",
    ]
    for recipient in sorted(recipients):
        lines += [f"# {recipient.kind} {recipient.name}", recipient.key]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class _Listing:
    recipients: tuple[Recipient, ...]
    value_id: str | None
    sha256: str | None


def _parse_recipients(text: str, where: str) -> _Listing:
    recipients: list[Recipient] = []
    meta: dict[str, str] = {}
    label: tuple[Kind, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        found = _LABEL_RE.match(line)
        if found:
            kind: Kind = "node" if found.group(1) == "node" else "admin"
            label = (kind, found.group(2))
            continue
        found = _META_RE.match(line)
        if found:
            meta[found.group(1)] = found.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        if label is None:
            raise ValueError(f"{where}:{number}: a recipient without a '# node NAME' or "
                             f"'# admin NAME' line above it")
        try:
            key = check_recipient(line)
        except AgeError as exc:
            raise ValueError(f"{where}:{number}: {exc}") from None
        recipients.append(Recipient(label[0], label[1], key))
        label = None
    return _Listing(tuple(recipients), meta.get("value-id"), meta.get("sha256"))


# What `load` made of each file and its recipients, by their contents: a plan loads two
# revisions, which mostly hold the same secrets (and reading a list of recipients checks
# every key in it). Emptied when it grows this large.
_LOADED: dict[tuple[str, bytes, str], Sealed] = {}
_MOST_LOADED = 4096


def load(snapshot: Snapshot, path: str) -> Sealed:
    """The sealed value at `path` (the .age file) with its recipients; ValueError saying
    what is wrong (missing file, not age, recipients that do not match the header)."""
    path = check_path(path)
    listing_path = recipients_path(path)
    for wanted in (path, listing_path):
        if not snapshot.is_file(wanted):
            raise ValueError(f"{wanted} not found")
    ciphertext = snapshot.read(path)
    text = snapshot.read(listing_path).decode("utf-8", "replace")
    known = _LOADED.get((path, ciphertext, text))
    if known is not None:
        return known
    try:
        header = read_header(ciphertext)
    except AgeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    listing = _parse_recipients(text, listing_path)
    if header.x25519_count != len(listing.recipients):
        raise ValueError(
            f"{path} is encrypted to {header.x25519_count} X25519 key(s) but "
            f"{listing_path} lists {len(listing.recipients)}: re-encrypt it "
            f"(reconciler secret rekey) or encrypt with age -R {listing_path}")
    digest = hashlib.sha256(ciphertext).hexdigest()
    value_id = listing.value_id if listing.value_id and listing.sha256 == digest else \
        "c" + digest[:15]
    if len(_LOADED) >= _MOST_LOADED:
        _LOADED.clear()
    found = _LOADED[path, ciphertext, text] = Sealed(path, ciphertext, listing.recipients,
                                                     value_id)
    return found
