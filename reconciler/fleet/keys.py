"""Node signing keys: generated on the node, registered in the config repo.

Each node signs its report commits with its own SSH key. The private key stays on the
node (`/etc/reconciler/signing-key`, mode 0600); its public half is registered in the
config repo, through a merge request like any other change, at

    keys/nodes/<node-name>/signing.pub

one OpenSSH public key a line (two lines while a key is being rotated). The reports
server accepts a node's report only when it is signed by a key registered there for
that very node at the config repo's main.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import Problem, UsageError

if TYPE_CHECKING:
    from reconciler.source.snapshot import Snapshot

DEFAULT_KEY = "/etc/reconciler/signing-key"
KEYS_DIR = "keys/nodes"
SIGNING_PUB = "signing.pub"
KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)  # fmt: skip


def registered_path(node: str) -> str:
    """Where `node`'s public signing key lives in the config repo."""
    return f"{KEYS_DIR}/{node}/{SIGNING_PUB}"


def key_problem(line: str) -> str | None:
    """Why `line` is not an OpenSSH public key (`type base64 [comment]`), or None."""
    parts = line.split()
    if len(parts) < 2:
        return "expected 'TYPE BASE64 [comment]'"
    kind, blob = parts[0], parts[1]
    if kind not in KEY_TYPES:
        return f"unknown key type {kind!r} (expected one of {', '.join(KEY_TYPES)})"
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "the key is not valid base64"
    if len(raw) < 4:
        return "the key is truncated"
    (size,) = struct.unpack(">I", raw[:4])
    if raw[4 : 4 + size] != kind.encode():
        return f"the key's content does not match its type {kind!r}"
    return None


def parse_keys(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The public keys of a signing.pub file, and (line, problem) for each bad line.
    Blank lines and `#` comments are allowed."""
    keys: list[str] = []
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        problem = key_problem(stripped)
        if problem is None:
            keys.append(" ".join(stripped.split()[:2]))
        else:
            problems.append((number, problem))
    return keys, problems


def check_registered(snapshot: Snapshot, nodes: set[str]) -> list[Problem]:
    """Problems with the nodes' signing.pub files at this revision: each must be a list of
    OpenSSH public keys. (What may sit under `keys/nodes/`, and for which nodes, is
    checked with the age keys: reconciler/secrets/keys.py.)"""
    if not snapshot.is_dir(KEYS_DIR):
        return []
    problems: list[Problem] = []
    for name in sorted(nodes & set(snapshot.listdir(KEYS_DIR))):
        path = registered_path(name)
        if not snapshot.is_file(path):
            continue
        try:
            text = snapshot.read(path).decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem("not UTF-8 text", path))
            continue
        keys, bad = parse_keys(text)
        problems.extend(Problem(f"bad public key: {why}", path, line) for line, why in bad)
        if not keys and not bad:
            problems.append(Problem("no public key in the file", path))
    return problems


def allowed_signers(node: str, keys: list[str]) -> str:
    """An allowed-signers file that trusts exactly `keys`, for `node`, to sign git commits."""
    return "".join(f'{node} namespaces="git" {key}\n' for key in keys)


def public_key(private_key: Path) -> str:
    """The public half of an existing key (from its `.pub`, else derived by ssh-keygen)."""
    pub = private_key.with_name(private_key.name + ".pub")
    if pub.is_file():
        return pub.read_text().strip()
    done = subprocess.run(["ssh-keygen", "-y", "-f", str(private_key)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise UsageError.because(f"{private_key}: not a usable SSH private key: "
                                 f"{done.stderr.strip()}")
    return done.stdout.strip()


def generate(private_key: Path, node: str, force: bool = False) -> tuple[str, bool]:
    """Create the node's ed25519 signing key (private 0600, `.pub` beside it).

    Returns the public key and whether it was created now; an existing key is kept
    (and its public key returned) unless `force`. The pair is written in a private
    directory beside the target and renamed into place, so a half-written key never
    exists at the configured path.
    """
    if private_key.exists() and not force:
        return public_key(private_key), False
    directory = private_key.parent
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".signing-key.", dir=directory))
    except OSError as exc:
        raise UsageError.because(f"cannot create {private_key}: {exc.strerror or exc}") from None
    try:
        made = building / "key"
        done = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node, "-f", str(made)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise UsageError.because(f"ssh-keygen failed: {done.stderr.strip()}")
        os.chmod(made, 0o600)
        os.replace(made.with_name("key.pub"), private_key.with_name(private_key.name + ".pub"))
        os.replace(made, private_key)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return public_key(private_key), True
