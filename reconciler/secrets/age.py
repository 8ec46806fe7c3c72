"""The age format through pyrage: X25519 keys, armored encryption and decryption, and a
reading of a ciphertext's header that needs no key.

age hides who a file is encrypted to (a recipient stanza does not name its key), so
the header tells only how many X25519 recipients there are; `sealed` keeps the list.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

import pyrage
from pyrage import x25519

ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
VERSION_LINE = b"age-encryption.org/v1"
RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
# The payload of the smallest file: a 16-byte nonce and one chunk's 16-byte tag.
_MIN_PAYLOAD = 32


class AgeError(ValueError):
    """A key, identity or ciphertext that age refuses; the message never holds a secret."""


def check_recipient(text: str) -> str:
    """`text` as an X25519 recipient (`age1…`), or AgeError saying why it is not one."""
    key = text.strip()
    if not RECIPIENT_RE.match(key):
        raise AgeError("not an age X25519 recipient (one line: age1 and 58 more characters)")
    try:
        x25519.Recipient.from_str(key)
    except pyrage.RecipientError as exc:
        raise AgeError(f"not a valid age recipient: {exc}") from None
    return key


@dataclass(frozen=True)
class NewIdentity:
    """A freshly generated key pair: the secret line for the identity file, and its
    public recipient."""

    secret: str
    recipient: str


def generate() -> NewIdentity:
    """A new X25519 identity."""
    identity = x25519.Identity.generate()
    return NewIdentity(str(identity), str(identity.to_public()))


def write_identity(path: str, identity: NewIdentity, comment: str) -> None:
    """Create identity file `path` with mode 0600 from the start; never overwrites."""
    text = f"# {comment}\n# public key: {identity.recipient}\n{identity.secret}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_identities(path: str, private: bool = False) -> list[x25519.Identity]:
    """The identities of an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments).

    With `private`, a file that its group or others may read is refused, as ssh refuses
    a readable private key: a node's key must be its own.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise AgeError(f"cannot read age identity {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if private and mode & 0o077:
            raise AgeError(f"age identity {path} is readable by others (mode {mode:04o}): "
                           f"chmod 600 it")
        data = handle.read(1 << 20)
    identities = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise AgeError(f"{path}:{number}: not an age X25519 identity "
                           f"(AGE-SECRET-KEY-1…)") from None
    if not identities:
        raise AgeError(f"age identity {path} holds no AGE-SECRET-KEY-1 line")
    return identities


def encrypt(plaintext: bytes, recipients: list[str]) -> bytes:
    """Armored age ciphertext of `plaintext` for every recipient."""
    keys = [x25519.Recipient.from_str(r) for r in recipients]
    armored = pyrage.encrypt(plaintext, keys, armored=True)
    return armored if armored.endswith(b"\n") else armored + b"\n"


def sealer(identity_path: str) -> Callable[[bytes], bytes] | None:
    """Encryption to the node's own key (the recipients of its identity file), for what
    only this node may read back, such as the backup of a secret file; None when the
    node has no usable identity."""
    try:
        identities = read_identities(identity_path, private=True)
    except AgeError:
        return None
    recipients = [str(identity.to_public()) for identity in identities]
    return lambda plaintext: encrypt(plaintext, recipients)


def decrypt(ciphertext: bytes, identities: list[x25519.Identity]) -> bytes:
    """The plain text, or AgeError: "not a recipient" when none of the identities is one."""
    try:
        return pyrage.decrypt(ciphertext, identities)
    except pyrage.DecryptError as exc:
        if "no matching keys" in str(exc).lower():
            raise AgeError("none of the identities is a recipient of this ciphertext") from None
        raise AgeError(f"the ciphertext does not decrypt: {exc}") from None


@dataclass(frozen=True)
class Header:
    """What a ciphertext says without a key: its recipient stanzas' types."""

    stanza_types: tuple[str, ...]

    @property
    def x25519_count(self) -> int:
        return sum(1 for kind in self.stanza_types if kind == "X25519")


def read_header(armored: bytes) -> Header:
    """Parse an armored age file's header; AgeError when it is not one."""
    text = armored.decode("ascii", "replace").strip()
    lines = text.splitlines()
    if len(lines) < 3 or lines[0].strip() != ARMOR_BEGIN or lines[-1].strip() != ARMOR_END:
        raise AgeError(f"not an armored age file ({ARMOR_BEGIN} … {ARMOR_END})")
    try:
        raw = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise AgeError("the armor is not valid base64") from None
    header_lines = raw.split(b"\n")
    if header_lines[0] != VERSION_LINE:
        raise AgeError("not an age v1 file (no age-encryption.org/v1 line)")
    types: list[str] = []
    offset = len(header_lines[0]) + 1
    for line in header_lines[1:]:
        offset += len(line) + 1
        if line.startswith(b"-> "):
            fields = line[3:].split(b" ")
            types.append(fields[0].decode("ascii", "replace"))
            if fields[0] == b"X25519" and (len(fields) != 2 or len(fields[1]) != 43):
                raise AgeError("malformed X25519 recipient stanza")
        elif line.startswith(b"---"):
            if len(raw) - offset < _MIN_PAYLOAD:
                raise AgeError("the ciphertext is truncated (no payload after the header)")
            return Header(tuple(types))
        elif not types:
            raise AgeError("malformed header: a line before the first recipient stanza")
    raise AgeError("the header has no MAC line (---): truncated or not age")
