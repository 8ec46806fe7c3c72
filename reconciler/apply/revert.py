"""Put back what a run changed on the node's filesystem.

`Journal` stacks on the node's system for one run: the first time the run writes,
removes, links, creates, chmods or chowns a path, it keeps that path's state from
before (its bytes in memory, its mode, owner and link target, or that it was missing).
`revert` then makes every such path what it was, the last touched first, each write
atomic as any other. A secret file's old bytes live only in memory and go back only
into the file itself (`secret=True`: never backed up in plain text). Putting a path
back is the service checks' `put_back` (apply/checks.py). What the run did
through commands — packages, services, users, mounts — is not a path write and is not
in the journal: the caller says so.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.apply.checks import Before, put_back
from reconciler.system.interface import System
from reconciler.system.wrappers import DelegatingSystem


class Journal(DelegatingSystem):
    """The node's system, keeping the state of every path before the run changes it."""

    def __init__(self, inner: System) -> None:
        super().__init__(inner)
        self.kept: dict[str, Before] = {}  # in the order first touched

    def _keep(self, path: str, secret: bool = False) -> None:
        known = self.kept.get(path)
        if known is not None:
            if secret and not known.secret:
                self.kept[path] = replace(known, secret=True)
            return
        live = self._inner.lstat(path)
        content = self._inner.read(path) if live is not None and live.kind == "file" else None
        self.kept[path] = Before(path, live, content, None, secret)

    def write_atomic(self, path: str, data: bytes, mode: int, uid: int | None,
                     gid: int | None, validate: str | None = None, *,
                     secret: bool = False) -> None:
        self._keep(path, secret)
        super().write_atomic(path, data, mode, uid, gid, validate, secret=secret)

    def chmod(self, path: str, mode: int) -> None:
        self._keep(path)
        super().chmod(path, mode)

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        self._keep(path)
        super().chown(path, uid, gid)

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        self._keep(path)
        super().mkdir(path, mode, uid, gid)

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None,
        secret: bool = False,
    ) -> None:
        self._keep(path, secret)
        super().symlink(path, target, uid=uid, gid=gid, secret=secret)

    def remove(self, path: str, *, secret: bool = False) -> None:
        self._keep(path, secret)
        super().remove(path, secret=secret)


def revert(system: System, kept: dict[str, Before]) -> list[str]:
    """Make every kept path what it was before the run, the last touched first; the
    paths that differed and were put back, in the order the run touched them."""
    restored = []
    for before in reversed(kept.values()):
        if differs(system, before):
            put_back(system, before)
            restored.append(before.path)
    return restored[::-1]


def differs(system: System, before: Before) -> bool:
    """Whether a path is no longer what it was before the run."""
    was, live = before.stat, system.lstat(before.path)
    if was is None or live is None:
        return was is not live
    if was.kind != live.kind or was.mode != live.mode or was.link_target != live.link_target:
        return True
    if system.can_chown and (was.uid, was.gid) != (live.uid, live.gid):
        return True
    return was.kind == "file" and system.read(before.path) != before.content
