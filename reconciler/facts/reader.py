"""Where facts are read from: small read-only readers, so gathering is pure parsing.

Two places are read. The running kernel's `/proc`, `/sys` and `/run` describe the
machine reconciler runs on, whatever `--root` is: a `DirectoryReader` rooted at `/` in
production, at a fake tree in tests. It follows symlinks, because sysfs is made of
them (`/sys/class/net/eth0` points into `/sys/devices`), and it never writes. The
managed filesystem's `os-release` is read through the node's `System` (`SystemReader`),
under `--root` and without following symlinks, like every other read of the node.
"""

from __future__ import annotations

import os
from typing import Protocol

from reconciler.system.interface import System, UnsafePath

READ_LIMIT = 1 << 16  # no fact needs more of a file than this


class TextSource(Protocol):
    """Read-only access to files by absolute path; what is missing or unreadable is
    None, never an error: a fact that cannot be read is a fact unknown."""

    def text(self, path: str, limit: int = READ_LIMIT) -> str | None: ...


class Reader(TextSource, Protocol):
    """A `TextSource` that can also list directories and tell what exists."""

    @property
    def live(self) -> bool:
        """True when this reads the running system itself (root "/")."""
        ...

    def listdir(self, path: str) -> list[str]: ...
    def exists(self, path: str) -> bool: ...


class DirectoryReader:
    """Files under a host directory, symlinks followed (sysfs is built of them)."""

    def __init__(self, root: str = "/") -> None:
        self.root = os.path.abspath(root)

    @property
    def live(self) -> bool:
        return self.root == "/"

    def _host(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def text(self, path: str, limit: int = READ_LIMIT) -> str | None:
        try:
            with open(self._host(path), "rb") as handle:
                return handle.read(limit).decode("utf-8", "replace")
        except OSError:
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._host(path)))
        except OSError:
            return []

    def exists(self, path: str) -> bool:
        return os.path.exists(self._host(path))


class SystemReader:
    """The node's files through its `System`: rooted at `--root`, no symlink followed."""

    def __init__(self, system: System) -> None:
        self.system = system

    def text(self, path: str, limit: int = READ_LIMIT) -> str | None:
        try:
            return self.system.read(path, limit).decode("utf-8", "replace")
        except (OSError, UnsafePath):
            return None
