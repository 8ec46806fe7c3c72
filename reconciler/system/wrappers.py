"""Systems that stack on another system and change one thing about it.

`DelegatingSystem` passes every call through; `ReadOnlySystem` (audit mode) refuses
writes and `LoggingSystem` (--debug) logs each call, each overriding only that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TypeVar

from reconciler.system.interface import (
    CommandResult,
    Stat,
    System,
    ValidationFailed,
    WriteRefused,
)
from reconciler.system.process import describe

T = TypeVar("T")


class DelegatingSystem:
    """A system that does whatever `inner` does; subclasses override what they change."""

    def __init__(self, inner: System) -> None:
        self._inner = inner

    @property
    def root(self) -> str:
        return self._inner.root

    @property
    def can_chown(self) -> bool:
        return self._inner.can_chown

    @property
    def runs_host_commands(self) -> bool:
        return self._inner.runs_host_commands

    def lstat(self, path: str) -> Stat | None:
        return self._inner.lstat(path)

    def read(self, path: str, limit: int | None = None) -> bytes:
        return self._inner.read(path, limit)

    def listdir(self, path: str) -> list[str]:
        return self._inner.listdir(path)

    def lock_holder(self, path: str) -> int | None:
        return self._inner.lock_holder(path)

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
        return self._inner.write_atomic(path, data, mode, uid, gid, validate, secret=secret)

    def back_up_ahead(self, paths: Iterable[str]) -> None:
        self._inner.back_up_ahead(paths)

    def chmod(self, path: str, mode: int) -> None:
        self._inner.chmod(path, mode)

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        self._inner.chown(path, uid, gid)

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        self._inner.mkdir(path, mode, uid, gid)

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None,
        secret: bool = False,
    ) -> None:
        self._inner.symlink(path, target, uid=uid, gid=gid, secret=secret)

    def remove(self, path: str, *, secret: bool = False) -> None:
        self._inner.remove(path, secret=secret)

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        return self._inner.run(command, timeout=timeout, cwd=cwd, env=env, mutates=mutates)

    def user_id(self, name: str) -> int:
        return self._inner.user_id(name)

    def group_id(self, name: str) -> int:
        return self._inner.group_id(name)

    def host_path(self, path: str) -> str:
        return self._inner.host_path(path)

    def caching(self) -> AbstractContextManager[None]:
        return self._inner.caching()

    def scratch_file(self, name: str, data: bytes) -> AbstractContextManager[str]:
        return self._inner.scratch_file(name, data)


def _refused(call: str, target: str) -> WriteRefused:
    return WriteRefused(f"{call} {target}: refused, the system is read-only (audit mode)")


class ReadOnlySystem(DelegatingSystem):
    """Audit mode: reads, `run(mutates=False)` and scratch files (outside the node) go
    through; every write to the node raises WriteRefused."""

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
        raise _refused("write_atomic", path)

    def back_up_ahead(self, paths: Iterable[str]) -> None:
        """Nothing is replaced in an audit, so nothing is saved ahead of it."""

    def chmod(self, path: str, mode: int) -> None:
        raise _refused("chmod", path)

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        raise _refused("chown", path)

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        raise _refused("mkdir", path)

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None,
        secret: bool = False,
    ) -> None:
        raise _refused("symlink", path)

    def remove(self, path: str, *, secret: bool = False) -> None:
        raise _refused("remove", path)

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        if mutates:
            raise _refused("run", describe(command))
        return self._inner.run(command, timeout=timeout, cwd=cwd, env=env, mutates=False)


def _ok(_: object) -> str:
    return "ok"


def _failure(error: Exception) -> str:
    # A validator's output may quote the new content: only its kind is logged.
    if isinstance(error, ValidationFailed):
        return "failed: ValidationFailed"
    return f"failed: {type(error).__name__}: {error}"


def _stat_outcome(found: Stat | None) -> str:
    if found is None:
        return "missing"
    return f"{found.kind} {found.mode:04o} {found.uid}:{found.gid}"


def _run_outcome(result: CommandResult) -> str:
    return f"exit {result.returncode}" + (" (timed out)" if result.timed_out else "")


def _owner(uid: int | None, gid: int | None) -> str:
    return f"{'-' if uid is None else uid}:{'-' if gid is None else gid}"


class LoggingSystem(DelegatingSystem):
    """Debug mode: one line per call (call, path or command, outcome, duration), never contents."""

    def __init__(self, inner: System, log: Callable[[str], None]) -> None:
        super().__init__(inner)
        self._log = log

    def _call(
        self,
        call: str,
        target: str,
        action: Callable[[], T],
        outcome: Callable[[T], str] = _ok,
    ) -> T:
        start = time.monotonic()
        try:
            result = action()
        except Exception as error:
            elapsed = (time.monotonic() - start) * 1000
            self._log(f"{call} {target} -> {_failure(error)} ({elapsed:.1f} ms)")
            raise
        elapsed = (time.monotonic() - start) * 1000
        self._log(f"{call} {target} -> {outcome(result)} ({elapsed:.1f} ms)")
        return result

    def lstat(self, path: str) -> Stat | None:
        return self._call("lstat", path, lambda: self._inner.lstat(path), _stat_outcome)

    def read(self, path: str, limit: int | None = None) -> bytes:
        return self._call(
            "read", path, lambda: self._inner.read(path, limit), lambda d: f"{len(d)} bytes"
        )

    def listdir(self, path: str) -> list[str]:
        return self._call(
            "listdir", path, lambda: self._inner.listdir(path), lambda n: f"{len(n)} entries"
        )

    def lock_holder(self, path: str) -> int | None:
        return self._call(
            "lock_holder", path, lambda: self._inner.lock_holder(path),
            lambda pid: "free" if pid is None else f"held by {pid}",
        )

    @contextmanager
    def scratch_file(self, name: str, data: bytes) -> Iterator[str]:
        with ExitStack() as stack:
            yield self._call(
                "scratch_file",
                f"{name} ({len(data)} bytes)",
                lambda: stack.enter_context(self._inner.scratch_file(name, data)),
                str,
            )

    def user_id(self, name: str) -> int:
        return self._call("user_id", name, lambda: self._inner.user_id(name), str)

    def group_id(self, name: str) -> int:
        return self._call("group_id", name, lambda: self._inner.group_id(name), str)

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
        size = "secret" if secret else f"{len(data)} bytes"
        checked = ", validated" if validate else ""
        return self._call(
            "write_atomic",
            f"{path} ({size}, mode {mode:04o}, owner {_owner(uid, gid)}{checked})",
            lambda: self._inner.write_atomic(path, data, mode, uid, gid, validate, secret=secret),
        )

    def back_up_ahead(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        self._call("back_up_ahead", f"{len(paths)} paths",
                   lambda: self._inner.back_up_ahead(paths))

    def chmod(self, path: str, mode: int) -> None:
        self._call(f"chmod {mode:04o}", path, lambda: self._inner.chmod(path, mode))

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        self._call(f"chown {_owner(uid, gid)}", path, lambda: self._inner.chown(path, uid, gid))

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        self._call(
            "mkdir",
            f"{path} (mode {mode:04o}, owner {_owner(uid, gid)})",
            lambda: self._inner.mkdir(path, mode, uid, gid),
        )

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None,
        secret: bool = False,
    ) -> None:
        self._call(
            "symlink",
            f"{path} -> {target}",
            lambda: self._inner.symlink(path, target, uid=uid, gid=gid, secret=secret),
        )

    def remove(self, path: str, *, secret: bool = False) -> None:
        self._call("remove", path, lambda: self._inner.remove(path, secret=secret))

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        kind = "run" if mutates else "run (query)"
        return self._call(
            kind,
            describe(command),
            lambda: self._inner.run(command, timeout=timeout, cwd=cwd, env=env, mutates=mutates),
            _run_outcome,
        )
