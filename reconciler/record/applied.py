"""Last-applied state: what this node itself wrote, per managed path — never contents.

Comparing it with the live file tells a pending change (the config moved) from a local
drift (someone edited the box), and finds orphans (applied before, no longer declared).
"""

# No `from __future__ import annotations`: pydantic would evaluate each field's annotation
# from its string, compiling it first, in every process that builds these models.

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.atomicfile import read_own, write_atomic
from reconciler.errors import ConfigError
from reconciler.statedir import StateDir

RecordType = Literal["file", "directory", "symlink", "package", "group", "user", "line",
                     "block", "mount"]


class Applied(BaseModel):
    """One path as reconciler last left it, or one thing that is not a path of its own
    (a package, an account, a line of a file), keyed by its action's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: RecordType
    action: str
    path: str | None = None  # records keyed by action id: the file the part lives in
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    sha256: str | None = None  # files; the part of a file; an account's managed fields
    target: str | None = None  # symlinks
    commit: str | None = None  # the config commit that wrote it
    secret: bool | None = None  # True for secret files: never backed up when removed

    def matches(
        self,
        kind: str,
        mode: int,
        uid: int,
        gid: int,
        *,
        sha256: str | None = None,
        target: str | None = None,
    ) -> bool:
        """Whether a state (live, or about to be written) is the one recorded here, in
        the fields the record kept: the same kind, and the same mode, owner, content
        hash and link target wherever the record has one."""
        if kind != self.type:
            return False
        pairs = ((self.mode, mode), (self.uid, uid), (self.gid, gid),
                 (self.sha256, sha256), (self.target, target))
        return all(recorded is None or recorded == found for recorded, found in pairs)


class AppliedState(BaseModel):
    """Every path this node manages, keyed by node path, and every other thing it
    manages, keyed by action id ("package:nginx", "line:/etc/hosts#apt")."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    paths: dict[str, Applied] = {}


def load(state_dir: StateDir) -> AppliedState:
    """Read the record; a missing file is an empty record, a corrupt one is an error."""
    path = str(state_dir.applied)
    try:
        return AppliedState.model_validate_json(read_own(path))
    except FileNotFoundError:
        return AppliedState()
    except OSError as exc:
        raise ConfigError.at(f"cannot read the last-applied state: {exc.strerror or exc}",
                             path=path) from None
    except (ValidationError, ValueError) as exc:
        raise ConfigError.at(
            f"corrupt last-applied state ({exc.__class__.__name__}); move it aside to start afresh",
            path=path,
        ) from None


def save(state_dir: StateDir, state: AppliedState) -> None:
    """Replace the record atomically (temp file, fsync, rename, fsync the directory).
    A run calls it only once what it wrote is durable (`run.converge`), so the record
    never claims content a crash could take back."""
    write_atomic(
        state_dir.applied,
        json.dumps(
            state.model_dump(mode="json", exclude_none=True), sort_keys=True, indent=1
        ).encode(),
    )
