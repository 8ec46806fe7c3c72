"""How a node names file contents in its own records: sha256 for ordinary files, and for
secret files an HMAC-SHA256 under a key that never leaves the node.

A plain sha256 of `password = hunter2` lets anyone holding the last-applied state,
the history repository or a report guess a weak password offline. The keyed hash
still tells the node whether a secret file changed, and tells no one else anything.
The key is 32 random bytes in the state directory (mode 0600), made on first need.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from reconciler.atomicfile import read_own
from reconciler.statedir import StateDir

KEY_BYTES = 32
PREFIX = "hmac-sha256:"


class ContentDigest:
    """Names contents for the records of one node (its state directory's key)."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._key: bytes | None = None

    @classmethod
    def of_state_dir(cls, state: StateDir) -> ContentDigest:
        return cls(state.secret_digest_key)

    def _load_key(self) -> bytes:
        if self._key is None:
            self._key = _read_or_create(self.key_path)
        return self._key

    def __call__(self, content: bytes, secret: bool) -> str:
        """The name of `content`: keyed when it is a secret file's."""
        if not secret:
            return hashlib.sha256(content).hexdigest()
        return PREFIX + hmac.new(self._load_key(), content, hashlib.sha256).hexdigest()


def _read_or_create(path: Path) -> bytes:
    """The node's key, created 0600 (never replaced: records made with it stay valid)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        key = read_own(path)
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path}: not a {KEY_BYTES}-byte key (move it aside to start "
                             f"afresh)") from None
        return key
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key
