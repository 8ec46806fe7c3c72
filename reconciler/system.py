"""The system interface: every side effect on a node goes through here.

Paths given to a `System` are absolute *node* paths ("/etc/nginx/nginx.conf"); the
system maps them under its root ("/" in production, a temporary directory in tests).
Wrappers stack on the real system: `ReadOnlySystem` refuses writes (audit mode),
`LoggingSystem` logs every call (--debug).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class UnsafePath(Exception):
    """A path that must not be followed: symlink, symlinked parent, FIFO, device, outside root."""


class WriteRefused(Exception):
    """A write attempted through a read-only system (audit mode)."""


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


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


class System(Protocol):
    """The small interface every action uses to look at and change the node."""

    root: str
    can_chown: bool  # False when not running as root: owner/group are then not managed
    runs_host_commands: bool  # False: commands and host services are only reported

    def lstat(self, path: str) -> Stat | None: ...
    def read(self, path: str, limit: int | None = None) -> bytes: ...
    def listdir(self, path: str) -> list[str]: ...
    def write_atomic(
        self,
        path: str,
        data: bytes,
        mode: int,
        uid: int | None,
        gid: int | None,
        validate: str | None = None,
    ) -> None: ...
    def chmod(self, path: str, mode: int) -> None: ...
    def chown(self, path: str, uid: int | None, gid: int | None) -> None: ...
    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None: ...
    def symlink(self, path: str, target: str) -> None: ...
    def remove(self, path: str) -> None: ...
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

