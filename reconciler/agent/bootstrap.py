"""Prepare a node: its agent.toml, its age identity and SSH signing key, and what the
config repo must learn about it (the public keys, through a merge request).

Private keys are created on the node with mode 0600 and never printed; an existing key
is kept, so running bootstrap again never locks a node out of its secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reconciler.agent import settings
from reconciler.agent.urls import check_url
from reconciler.compile import names
from reconciler.errors import ConfigError, UsageError
from reconciler.fleet import keys as fleet_keys
from reconciler.secrets import age, keys


@dataclass(frozen=True)
class Request:
    """What the operator asked for; paths are overridable for tests and unusual layouts."""

    remote: str
    node: str
    branch: str
    mode: str | None  # None: the fleet's policy decides
    config: Path
    state_dir: Path
    identity: Path
    signing_key: Path
    force: bool = False


@dataclass(frozen=True)
class PublicKey:
    """A public key the config repo must hold, and whether it was made just now."""

    repo_path: str
    line: str
    created: bool


def check(request: Request) -> None:
    """Refuse bad input before anything is written."""
    try:
        names.parse(request.node)
        check_url(request.remote)
    except ValueError as exc:
        raise UsageError.because(str(exc)) from None
    if request.config.exists() and not request.force:
        raise UsageError.because(f"{request.config} exists: this node is bootstrapped already "
                                 f"(--force rewrites agent.toml; keys are always kept)")


def write_config(request: Request) -> None:
    """agent.toml, checked by the agent's own loader before it replaces anything."""
    values = {"remote": request.remote, "branch": request.branch, "node": request.node,
              "mode": request.mode, "state-dir": str(request.state_dir),
              "identity": str(request.identity), "signing-key": str(request.signing_key)}
    values = {key: value for key, value in values.items() if value is not None}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"# Written by `reconciler bootstrap` on {stamp}; every setting is in the README.\n" + \
        "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    request.config.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".agent.toml.", dir=request.config.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        settings.load(temp)
        os.replace(temp, request.config)
    except ConfigError:
        os.unlink(temp)
        raise
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def age_identity(request: Request) -> PublicKey:
    """The node's age identity: created (0600) unless one exists, which is kept."""
    path = str(request.identity)
    repo_path = keys.node_key_path(request.node)
    if request.identity.exists():
        try:
            found = age.read_identities(path, private=True)
        except age.AgeError as exc:
            raise UsageError.because(str(exc)) from None
        return PublicKey(repo_path, str(found[0].to_public()), False)
    request.identity.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    pair = age.generate()
    age.write_identity(path, pair, f"age identity of {request.node} (reconciler bootstrap)")
    return PublicKey(repo_path, pair.recipient, True)


def signing_key(request: Request) -> PublicKey | None:
    """The node's SSH signing key (for its fleet reports), made with ssh-keygen unless one
    exists; None when ssh-keygen is not installed."""
    repo_path = f"{keys.NODES_DIR}/{request.node}/signing.pub"
    if not request.signing_key.exists() and shutil.which("ssh-keygen") is None:
        return None
    public, created = fleet_keys.generate(request.signing_key, request.node)
    return PublicKey(repo_path, public, created)


def instructions(node: str, published: list[PublicKey]) -> list[str]:
    """The lines to give the operator: what to add to the config repo, and why."""
    lines = ["", "Add this node's public keys to the config repo in a merge request:", ""]
    for key in published:
        lines += [f"  {key.repo_path}:", f"    {key.line}"]
    lines += ["", "for example, in a clone of the config repo:", ""]
    lines.append(f"  mkdir -p {keys.NODES_DIR}/{node}")
    lines += [f"  echo '{key.line}' > {key.repo_path}" for key in published]
    lines += ["  reconciler secret rekey --identity ~/.config/age/admin.key   "
              "# encrypt the secrets it uses to it",
              "  reconciler validate && git add keys secrets && git commit "
              f"-m 'Keys of {node}'", ""]
    return lines
