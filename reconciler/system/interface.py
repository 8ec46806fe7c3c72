"""The system interface: every side effect on a node goes through a `System`.

Paths given to a `System` are absolute *node* paths ("/etc/nginx/nginx.conf"); the
system maps them under its root ("/" in production, a temporary directory in tests).
`LocalSystem` (local.py) is the real node; the wrappers in wrappers.py stack on it:
`ReadOnlySystem` refuses writes (audit mode), `LoggingSystem` logs every call (--debug).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


class ToolError(Exception):
    """An operation through a host tool (dpkg, apt, systemctl, a declared command) failed;
    names what it was about and keeps the tail of the tool's own words."""

    kind = "tool"
    TAIL_LINES = 15

    def __init__(self, name: str, message: str, stderr: str = "") -> None:
        self.name = name
        self.message = message
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        self.stderr_tail = "\n".join(lines[-self.TAIL_LINES :])
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.kind} {self.name}: {self.message}"
        return f"{text}\n{self.stderr_tail}" if self.stderr_tail else text


class UnsafePath(Exception):
    """A path that must not be followed: symlink, symlinked parent, FIFO, device, outside root."""


class WriteRefused(Exception):
    """A write attempted through a read-only system (audit mode)."""


class ValidationFailed(Exception):
    """The validate command rejected new content; the live file was left untouched.

    `output` is the command's output, or empty for a secret file (a validator may echo
    the offending line, which must not reach a report).
    """

    def __init__(self, message: str, *, command: str = "", output: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.output = output


class UnknownName(KeyError):
    """A user or group name that does not resolve on the host running reconciler."""

    def __str__(self) -> str:
        return str(self.args[0])


class NotDurable(OSError):
    """Changes were made but syncing their directories failed: a crash may undo them."""


@dataclass(frozen=True)
class Stat:
    """What an action needs to know about a live path (never follows the last symlink)."""

    kind: str  # "file", "directory", "symlink", "fifo", "device", "socket"
    mode: int  # permission bits only (0o7777)
    uid: int
    gid: int
    size: int
    nlink: int
    link_target: str | None = None  # for symlinks

    def foreign_link(self, declared_uid: int | None) -> str | None:
        """Why this path must not be replaced, when it is a symlink someone else put there
        (not root, not the running user, not the owner the action declares): whoever did
        may be steering what reconciler writes. None when it is no such link."""
        if self.kind != "symlink" or self.uid in (0, os.geteuid(), declared_uid):
            return None
        return (f"is a symlink owned by uid {self.uid}, not by root or the running user; "
                f"refusing to replace it (remove it if it is not meant to be there)")


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command: exit code (negative: killed by that signal) and output."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


class System(Protocol):
    """The small interface every action uses to look at and change the node."""

    @property
    def root(self) -> str:
        """The host directory node paths map under ("/" in production)."""
        ...

    @property
    def can_chown(self) -> bool:
        """False when not running as root: owner/group are then not managed."""
        ...

    @property
    def runs_host_commands(self) -> bool:
        """False: commands and host services are only reported, not run."""
        ...

    def lstat(self, path: str) -> Stat | None: ...
    def read(self, path: str, limit: int | None = None) -> bytes: ...
    def listdir(self, path: str) -> list[str]: ...
    def lock_holder(self, path: str) -> int | None:
        """Who holds an fcntl lock on file `path` (tested, never taken): a pid, or None."""
        ...

    def write_atomic(
        self,
        path: str,
        data: bytes,
        mode: int,
        uid: int | None,
        gid: int | None,
        validate: str | None = None,
        *,
        secret: bool = False,
    ) -> str | None:
        """Replace a file atomically; with `validate`, why it was not validated, or None."""
        ...

    def back_up_ahead(self, paths: Iterable[str]) -> None:
        """Back up the regular files at `paths`, which the run is about to replace, all
        made durable at once: cheaper than each when it is replaced (a cost, never a
        change of what is written; a path that cannot be saved now is saved then)."""
        ...

    def chmod(self, path: str, mode: int) -> None: ...
    def chown(self, path: str, uid: int | None, gid: int | None) -> None: ...
    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None: ...
    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None,
        secret: bool = False,
    ) -> None: ...
    def remove(self, path: str, *, secret: bool = False) -> None: ...
    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult: ...
    def user_id(self, name: str) -> int: ...
    def group_id(self, name: str) -> int: ...
    def host_path(self, path: str) -> str: ...
    def caching(self) -> AbstractContextManager[None]:
        """The span of one run: walks may be reused and directory syncs batched within it."""
        ...

    def scratch_file(self, name: str, data: bytes) -> AbstractContextManager[str]:
        """`data` as a private host file called `name`, for a tool that needs a path (dpkg
        and a .deb); yields the host path and removes the file on exit. It lives outside
        the root and the state directory, so it is no change to the node: audit allows it."""
        ...
