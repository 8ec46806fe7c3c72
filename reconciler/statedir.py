"""Where reconciler keeps its own files on a node: one `StateDir` value names them all.

Every module that reads or writes one of these files is handed a `StateDir` (or the
one path it needs from it); none builds a path inside the state directory by itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Problem, UsageError

AGENT_CONFIG = "/etc/reconciler/agent.toml"
AGE_IDENTITY = "/etc/reconciler/age.key"  # the node's private age key (secrets), 0600
DEFAULT = Path("/var/lib/reconciler")
SIGNING_KEY = Path("/etc/reconciler/signing-key")  # the node's SSH key for its fleet reports


@dataclass(frozen=True)
class StateDir:
    """The state directory of one node (`/var/lib/reconciler` in production)."""

    path: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> StateDir:
        """The state directory at `path`, made absolute (relative to the current directory)."""
        return cls(Path(os.path.abspath(path)))

    @classmethod
    def under(cls, root: str | os.PathLike[str]) -> StateDir:
        """`var/lib/reconciler` under a node root, so a demo root is self-contained."""
        return cls.of(Path(root) / DEFAULT.relative_to("/"))

    def ensure(self) -> None:
        """Create the directory (mode 0700: it holds backups of secret files)."""
        ensure_directory(self.path, "state-dir", 0o700)

    @property
    def lock(self) -> Path:
        """flock'ed by the one run allowed at a time."""
        return self.path / "lock"

    @property
    def source_cache(self) -> Path:
        """The bare cache of the config repo."""
        return self.path / "source.git"

    @property
    def source_state(self) -> Path:
        """Last good commit, refused tip, rollback pin."""
        return self.path / "source-state.json"

    @property
    def applied(self) -> Path:
        """What reconciler last wrote, per path (hashes, never contents)."""
        return self.path / "applied.json"

    @property
    def last_run(self) -> Path:
        """The report of the last run."""
        return self.path / "last-run.json"

    @property
    def last_success(self) -> Path:
        """When the last run that did not fail was, and at which commit."""
        return self.path / "last-success.json"

    @property
    def history(self) -> Path:
        """The node's own git history of runs."""
        return self.path / "history"

    @property
    def backups(self) -> Path:
        """Originals of replaced files, by sha256."""
        return self.path / "backups"

    @property
    def secret_digest_key(self) -> Path:
        """The node's key naming secret files in its records (HMAC, never a plain hash)."""
        return self.path / "secret-digest.key"

    @property
    def template_cache(self) -> Path:
        """Compiled templates, reused across runs."""
        return self.path / "cache" / "templates"

    @property
    def metrics(self) -> Path:
        """The Prometheus textfile of the last run (unless the agent is told another)."""
        return self.path / "reconciler.prom"

    def __str__(self) -> str:
        return str(self.path)


def ensure_directory(path: Path, setting: str, mode: int) -> None:
    """Create a directory a setting names, or say clearly why it cannot be used."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise UsageError([Problem(f"cannot use it as the {setting} directory: "
                                  f"{exc.strerror or exc}", str(path))]) from None
