"""OpenSSH public keys as authorized_keys lines: checked at compile time, so a broken
key fails `validate` instead of locking an operator out of a node."""

from __future__ import annotations

import base64
import binascii
import struct

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})  # fmt: skip
# Options without a value (sshd(8), AUTHORIZED_KEYS FILE FORMAT).
FLAG_OPTIONS = frozenset({
    "agent-forwarding", "cert-authority", "no-agent-forwarding", "no-port-forwarding",
    "no-pty", "no-user-rc", "no-X11-forwarding", "port-forwarding", "pty", "restrict",
    "user-rc", "X11-forwarding", "no-touch-required", "verify-required",
})  # fmt: skip


def check_key(line: str) -> str:
    """One authorized_keys line (`[options] type base64 [comment]`), whitespace-trimmed;
    raises ValueError saying what is wrong with it."""
    text = line.strip()
    if "\n" in text or "\r" in text:
        raise ValueError("a key must be one line")
    options, rest = _split_options(text)
    fields = rest.split(None, 2)
    if len(fields) < 2:
        raise ValueError(f"not an OpenSSH public key: {_short(text)!r}")
    kind, blob = fields[0], fields[1]
    if kind not in KEY_TYPES:
        raise ValueError(f"unknown key type {kind!r} in {_short(text)!r}")
    try:
        data = base64.b64decode(blob, validate=True)
    except binascii.Error:
        raise ValueError(f"the {kind} key's base64 is damaged: {_short(text)!r}") from None
    fields_of_key = _fields(data)
    if not fields_of_key or fields_of_key[0] != kind.encode() or len(fields_of_key) < 2:
        raise ValueError(f"the key data does not hold a {kind} key: {_short(text)!r}")
    return text if options is None else f"{options} {rest}"


def _fields(data: bytes) -> list[bytes] | None:
    """The length-prefixed strings a public key blob is made of; None when a length runs
    past the end (a truncated or damaged key)."""
    found = []
    while data:
        if len(data) < 4:
            return None
        size = struct.unpack(">I", data[:4])[0]
        if len(data) < 4 + size:
            return None
        found.append(data[4:4 + size])
        data = data[4 + size:]
    return found


def comment(line: str) -> str:
    """The key's comment (often who it belongs to), or its type and a short fingerprint of
    its data when it has none: how reports name a key."""
    _, rest = _split_options(line.strip())
    fields = rest.split(None, 2)
    if len(fields) == 3:
        return fields[2]
    return f"{fields[0]} …{fields[1][-12:]}" if len(fields) == 2 else rest


def keys_in_file(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every key in a .pub or authorized_keys file: blank lines and
    comments skipped."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def _split_options(text: str) -> tuple[str | None, str]:
    """(options, the rest) where options precede the key type; quoted commas and spaces
    inside options (`command="a b"`) do not end them. A first word that is no option
    (none has neither '=' nor ',' unless it is a flag) is taken for the key type."""
    first = text.split(None, 1)[0] if text.split() else ""
    if first in KEY_TYPES or not ("=" in first or "," in first or first in FLAG_OPTIONS):
        return None, text
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char in " \t" and not quoted:
            return text[:index], text[index:].strip()
    return None, text


def _short(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:40]}…{text[-12:]}"
