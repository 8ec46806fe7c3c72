"""The system interface: every side effect on a node goes through here.

Paths given to a `System` are absolute *node* paths ("/etc/nginx/nginx.conf"); the
system maps them under its root ("/" in production, a temporary directory in tests).
Wrappers stack on the real system: `ReadOnlySystem` refuses writes (audit mode),
`LoggingSystem` logs every call (--debug).

`LocalSystem` never follows a symlink below its root: every path is walked one
component at a time from a directory file descriptor (openat style), so a symlink
planted anywhere in a managed path cannot redirect a read or a write elsewhere.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import math
import os
import posixpath
import pwd
import re
import secrets
import selectors
import shlex
import signal
import stat
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol, TypeVar


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
    ) -> None: ...
    def chmod(self, path: str, mode: int) -> None: ...
    def chown(self, path: str, uid: int | None, gid: int | None) -> None: ...
    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None: ...
    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
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


class NotDurable(OSError):
    """Changes were made but syncing their directories failed: a crash may undo them."""


OUTPUT_LIMIT = 64 * 1024  # bytes of each output stream kept (the last ones)
VALIDATE_TIMEOUT = 120.0  # seconds a validate command may take
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of a timed-out process group
DRAIN_GRACE = 0.5  # seconds to keep reading output after the command itself exited
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024
WALK_CACHE = 128  # directory fds kept open while caching (least recently used go first)
PENDING_SYNCS = 256  # directories whose sync may wait; beyond this they are synced at once

T = TypeVar("T")


def _parts(path: str) -> list[str]:
    """Split an absolute node path into components, refusing anything that could escape."""
    if "\0" in path:
        raise UnsafePath(f"path {path!r} contains a NUL byte")
    if not path.startswith("/"):
        raise UnsafePath(f"path {path!r} is not absolute (node paths start with '/')")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"path {path!r} has a '..' component")
    return parts


def _node(parts: Sequence[str]) -> str:
    return "/" + "/".join(parts)


def _kind(st_mode: int) -> str:
    if stat.S_ISREG(st_mode):
        return "file"
    if stat.S_ISDIR(st_mode):
        return "directory"
    if stat.S_ISLNK(st_mode):
        return "symlink"
    if stat.S_ISFIFO(st_mode):
        return "fifo"
    if stat.S_ISSOCK(st_mode):
        return "socket"
    return "device"


def _located(error: OSError, path: str) -> OSError:
    """The same OS error (same errno, same subclass) naming the node path."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror, path)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_all(fd: int, limit: int | None) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining is None or remaining > 0:
        chunk = os.read(fd, _CHUNK if remaining is None else min(_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return b"".join(chunks)


def _temp_name(name: str) -> str:
    """`.<name>.reconciler-XXXXXXXX`, with the name cut so the result fits NAME_MAX."""
    short = os.fsdecode(os.fsencode(name)[:200])
    return f".{short}.reconciler-{secrets.token_hex(4)}"


def _describe(command: str | list[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def _home() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return "/"


class _Walks:
    """Directory fds of one run, keyed by node path components, and directories to sync.

    Every fd was opened one component at a time with O_NOFOLLOW from a cached parent,
    so it refers to the real directory that was there, never to a symlink's target.
    """

    def __init__(self) -> None:
        self.dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self.unsynced: dict[str, int] = {}  # node path -> its own fd

    def get(self, key: tuple[str, ...]) -> int | None:
        fd = self.dirs.get(key)
        if fd is not None:
            self.dirs.move_to_end(key)
        return fd

    def put(self, key: tuple[str, ...], fd: int) -> None:
        self.dirs[key] = fd
        while len(self.dirs) > WALK_CACHE:
            os.close(self.dirs.popitem(last=False)[1])

    def forget(self, key: tuple[str, ...]) -> None:
        """Drop a directory about to be removed, and everything cached below it."""
        for cached in [k for k in self.dirs if k[: len(key)] == key]:
            os.close(self.dirs.pop(cached))

    def defer_sync(self, node: str, dir_fd: int) -> None:
        if node not in self.unsynced:
            if len(self.unsynced) >= PENDING_SYNCS:
                self.sync()
            self.unsynced[node] = os.dup(dir_fd)

    def sync(self) -> None:
        """fsync every directory changed since the last sync; NotDurable names the first
        that failed (all are tried and closed)."""
        failed: NotDurable | None = None
        pending, self.unsynced = self.unsynced, {}
        for node, fd in pending.items():
            try:
                os.fsync(fd)
            except OSError as error:
                failed = failed or NotDurable(error.errno, f"cannot sync directory "
                                                           f"({error.strerror})", node)
            finally:
                os.close(fd)
        if failed is not None:
            raise failed

    def close(self) -> None:
        try:
            self.sync()
        finally:
            for fd in self.dirs.values():
                os.close(fd)
            self.dirs.clear()


class LocalSystem:
    """The real node, rooted at `root`, walking every path without following symlinks.

    `backup_dir` (a host path) keeps the bytes of every regular file replaced or removed,
    named by sha256, at most `backup_limit` of them (the least recently saved go first).
    User and group names resolve on the host running reconciler, also when `root` is
    not "/". Commands run on the host; `host_commands` only tells actions whether they
    should (default: only when `root` is "/").
    """

    def __init__(
        self,
        root: str = "/",
        *,
        host_commands: bool | None = None,
        backup_dir: str | None = None,
        backup_limit: int = 1000,
    ) -> None:
        if "\0" in root:
            raise UnsafePath(f"root {root!r} contains a NUL byte")
        if backup_limit < 1:
            raise ValueError(f"backup_limit must be at least 1, not {backup_limit}")
        self._root = os.path.abspath(root)
        self._can_chown = os.geteuid() == 0
        self._host_commands = self._root == "/" if host_commands is None else host_commands
        self._backup_dir = os.path.abspath(backup_dir) if backup_dir is not None else None
        self._backup_limit = backup_limit
        self._walks: _Walks | None = None

    @property
    def root(self) -> str:
        return self._root

    @property
    def can_chown(self) -> bool:
        return self._can_chown

    @property
    def runs_host_commands(self) -> bool:
        return self._host_commands

    def host_path(self, path: str) -> str:
        """The host path of a node path (for messages, `creates=` guards and commands)."""
        parts = _parts(path)
        return os.path.join(self._root, *parts) if parts else self._root

    # -- walking -----------------------------------------------------------------

    @contextmanager
    def caching(self) -> Iterator[None]:
        """For the span of one run: keep walked directories open and sync the directories
        this run changed once, on the way out, instead of after every change.

        A file's content is still synced before its rename makes it visible; only the
        directory entries wait, and they are durable when this returns (NotDurable if
        not). A directory someone else replaces meanwhile is not seen until the next
        run: writes keep going to the real directory that was opened, never through a
        symlink. Re-entering is a no-op.
        """
        if self._walks is not None:
            yield
            return
        self._walks = _Walks()
        try:
            yield
        finally:
            walks, self._walks = self._walks, None
            walks.close()

    def _open_dir(self, parts: Sequence[str], path: str) -> int:
        """An fd on directory `parts` below root, opened one component at a time, no symlinks.

        The caller closes it. While caching, the walk starts from the deepest directory
        already opened. Raises UnsafePath for a symlinked component, FileNotFoundError
        or NotADirectoryError (naming the component) when the directory cannot exist.
        """
        walks = self._walks
        start = 0
        fd = -1
        if walks is not None:
            for start in range(len(parts), -1, -1):
                cached = walks.get(tuple(parts[:start]))
                if cached is not None:
                    fd = os.dup(cached)
                    break
        if fd < 0:
            start = 0
            fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if walks is not None:
                walks.put((), os.dup(fd))
        try:
            for index in range(start, len(parts)):
                name = parts[index]
                here = _node(parts[: index + 1])
                try:
                    next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as error:
                    if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise _located(error, here) from None
                    found = _lstat_at(fd, name)
                    if found is not None and stat.S_ISLNK(found.st_mode):
                        raise UnsafePath(
                            f"{here} is a symlink; refusing to follow it (for {path})"
                        ) from None
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", here) from None
                os.close(fd)
                fd = next_fd
                if walks is not None:
                    walks.put(tuple(parts[: index + 1]), os.dup(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _sync_dir(self, dir_fd: int, node: str) -> None:
        """Make changes to the entries of the directory holding `node` durable (now, or
        when the run's caching ends)."""
        if self._walks is None:
            os.fsync(dir_fd)
        else:
            self._walks.defer_sync(posixpath.dirname(node), dir_fd)

    @contextmanager
    def _parent(self, path: str) -> Iterator[tuple[int, str, str]]:
        """Yield (parent dir fd, final name, normalized node path); the parent must exist."""
        parts = _parts(path)
        if not parts:
            raise UnsafePath("the root directory itself cannot be written or removed")
        node = _node(parts)
        try:
            fd = self._open_dir(parts[:-1], node)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                errno.ENOENT, f"parent directory of {node} does not exist", error.filename
            ) from None
        try:
            yield fd, parts[-1], node
        finally:
            os.close(fd)

    @contextmanager
    def _open_final(self, path: str, verb: str) -> Iterator[int]:
        """Yield an fd on an existing file or directory at `path`, refusing anything else."""
        with self._parent(path) as (dir_fd, name, node):
            before = _lstat_at(dir_fd, name)
            if before is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", node)
            kind = _kind(before.st_mode)
            if kind not in ("file", "directory"):
                raise UnsafePath(f"refusing to {verb} {node}: it is a {kind}")
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                raise _located(error, node) from None
            try:
                after = os.fstat(fd)
                if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                    raise UnsafePath(f"refusing to {verb} {node}: it changed while being opened")
                yield fd
            finally:
                os.close(fd)

    # -- reading -----------------------------------------------------------------

    def lstat(self, path: str) -> Stat | None:
        """The live state of `path` without following it; None when it (or a parent) is missing."""
        parts = _parts(path)
        node = _node(parts)
        try:
            dir_fd = self._open_dir(parts[:-1], node)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            if not parts:
                found: os.stat_result | None = os.fstat(dir_fd)
            else:
                found = _lstat_at(dir_fd, parts[-1])
            if found is None:
                return None
            target = None
            if stat.S_ISLNK(found.st_mode):
                target = os.readlink(parts[-1], dir_fd=dir_fd)
        except OSError as error:
            raise _located(error, node) from None
        finally:
            os.close(dir_fd)
        return Stat(
            kind=_kind(found.st_mode),
            mode=stat.S_IMODE(found.st_mode),
            uid=found.st_uid,
            gid=found.st_gid,
            size=found.st_size,
            nlink=found.st_nlink,
            link_target=target,
        )

    def read(self, path: str, limit: int | None = None) -> bytes:
        """The bytes of a regular file (at most `limit`); anything else is UnsafePath."""
        with self._parent(path) as (dir_fd, name, node):
            found = _lstat_at(dir_fd, name)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", node)
            if not stat.S_ISREG(found.st_mode):
                raise UnsafePath(f"refusing to read {node}: it is a {_kind(found.st_mode)}")
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise UnsafePath(f"refusing to read {node}: it is a symlink") from None
                raise _located(error, node) from None
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    raise UnsafePath(f"refusing to read {node}: it is a {_kind(opened.st_mode)}")
                return _read_all(fd, limit)
            except OSError as error:
                raise _located(error, node) from None
            finally:
                os.close(fd)

    def listdir(self, path: str) -> list[str]:
        """Sorted entry names of a directory (a symlinked directory is UnsafePath)."""
        parts = _parts(path)
        fd = self._open_dir(parts, _node(parts))
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    # -- writing -----------------------------------------------------------------

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
    ) -> None:
        """Replace `path` with `data`: temp file, owner and mode, fsync, validate, rename.

        The parent directory must exist. A symlink at `path` is replaced, never followed;
        a hard-linked file is replaced, so its other names keep the old content. Owner or
        group left as None keep those of the file being replaced. `validate` is a command
        with `%s`, substituted (already shell-quoted) with the temporary file's host path,
        run in the target's host directory. Any failure leaves the live file untouched
        and removes the temporary file.
        """
        if validate is not None and "%s" not in validate:
            raise ValidationFailed(
                f"validate command for {path} has no %s for the new file: {validate!r}",
                command=validate,
            )
        with self._parent(path) as (dir_fd, name, node):
            existing = _lstat_at(dir_fd, name)
            if existing is not None:
                kind = _kind(existing.st_mode)
                if kind not in ("file", "symlink"):
                    raise UnsafePath(f"refusing to replace {node}: it is a {kind}")
                if kind == "file":
                    if not secret:
                        self._backup_at(dir_fd, name, node)
                    uid = existing.st_uid if uid is None else uid
                    gid = existing.st_gid if gid is None else gid
            temp, fd = self._create_temp(dir_fd, name, node)
            try:
                try:
                    _write_all(fd, data)
                    self._fchown(fd, uid, gid)
                    os.fchmod(fd, mode & 0o7777)  # after fchown, which clears set-id bits
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if validate is not None:
                    self._validate(validate, node, temp, secret)
                os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                self._sync_dir(dir_fd, node)
            except OSError as error:
                _unlink_quietly(dir_fd, temp)
                raise _located(error, node) from None
            except BaseException:
                _unlink_quietly(dir_fd, temp)
                raise

    def _create_temp(self, dir_fd: int, name: str, node: str) -> tuple[str, int]:
        for _ in range(100):
            temp = _temp_name(name)
            try:
                return temp, os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=dir_fd)
            except FileExistsError:
                continue
            except OSError as error:
                raise _located(error, node) from None
        raise FileExistsError(errno.EEXIST, "no free temporary file name next to", node)

    def _fchown(self, fd: int, uid: int | None, gid: int | None) -> None:
        if self._can_chown and (uid is not None or gid is not None):
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)

    def _validate(self, command: str, node: str, temp: str, secret: bool) -> None:
        directory = os.path.dirname(self.host_path(node))
        temp_host = os.path.join(directory, temp)
        result = self.run(
            command.replace("%s", shlex.quote(temp_host)),
            timeout=VALIDATE_TIMEOUT,
            cwd=directory,
            mutates=False,
        )
        if result.returncode == 0 and not result.timed_out:
            return
        how = "timed out" if result.timed_out else f"exited {result.returncode}"
        output = "" if secret else (result.stdout + result.stderr).strip()
        shown = "output withheld: secret file" if secret else (output[-2000:] or "no output")
        raise ValidationFailed(
            f"validation of {node} failed: {command!r} {how}: {shown}",
            command=command,
            output=output,
        )

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits of a file or directory (symlinks and special files refused)."""
        with self._open_final(path, "chmod") as fd:
            try:
                os.fchmod(fd, mode & 0o7777)
            except OSError as error:
                raise _located(error, path) from None

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        """Set owner/group of a file or directory; a no-op when not root (`can_chown`)."""
        if not self._can_chown or (uid is None and gid is None):
            return
        with self._open_final(path, "chown") as fd:
            try:
                self._fchown(fd, uid, gid)
            except OSError as error:
                raise _located(error, path) from None

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        """Create one directory (its parent must exist) with exactly this owner and mode."""
        with self._parent(path) as (dir_fd, name, node):
            if self._walks is not None:
                self._walks.forget(tuple(_parts(node)))  # a directory removed by someone else
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except OSError as error:
                raise _located(error, node) from None
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    self._fchown(fd, uid, gid)
                    os.fchmod(fd, mode & 0o7777)
                finally:
                    os.close(fd)
                self._sync_dir(dir_fd, node)
            except OSError as error:
                with suppress(OSError):
                    os.rmdir(name, dir_fd=dir_fd)
                raise _located(error, node) from None

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
    ) -> None:
        """Point `path` at `target` atomically (temp link, rename); a directory there is refused."""
        if not target or "\0" in target:
            raise UnsafePath(f"invalid symlink target {target!r} for {path}")
        with self._parent(path) as (dir_fd, name, node):
            existing = _lstat_at(dir_fd, name)
            if existing is not None:
                kind = _kind(existing.st_mode)
                if kind not in ("file", "symlink"):
                    raise UnsafePath(f"refusing to replace {node} with a symlink: it is a {kind}")
                if kind == "file":
                    self._backup_at(dir_fd, name, node)
            temp = self._create_temp_link(dir_fd, name, node, target)
            try:
                if self._can_chown and (uid is not None or gid is not None):
                    os.chown(
                        temp,
                        -1 if uid is None else uid,
                        -1 if gid is None else gid,
                        dir_fd=dir_fd,
                        follow_symlinks=False,
                    )
                os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                self._sync_dir(dir_fd, node)
            except OSError as error:
                _unlink_quietly(dir_fd, temp)
                raise _located(error, node) from None

    def _create_temp_link(self, dir_fd: int, name: str, node: str, target: str) -> str:
        for _ in range(100):
            temp = _temp_name(name)
            try:
                os.symlink(target, temp, dir_fd=dir_fd)
            except FileExistsError:
                continue
            except OSError as error:
                raise _located(error, node) from None
            return temp
        raise FileExistsError(errno.EEXIST, "no free temporary file name next to", node)

    def remove(self, path: str, *, secret: bool = False) -> None:
        """Remove a file, symlink or empty directory; a missing path is left alone.

        A non-empty directory is refused (OSError ENOTEMPTY). A regular file is backed
        up first unless `secret`.
        """
        if self.lstat(path) is None:
            return
        with self._parent(path) as (dir_fd, name, node):
            existing = _lstat_at(dir_fd, name)
            if existing is None:
                return
            try:
                if stat.S_ISDIR(existing.st_mode):
                    if self._walks is not None:
                        self._walks.forget(tuple(_parts(node)))
                    os.rmdir(name, dir_fd=dir_fd)
                else:
                    if stat.S_ISREG(existing.st_mode) and not secret:
                        self._backup_at(dir_fd, name, node)
                    os.unlink(name, dir_fd=dir_fd)
                self._sync_dir(dir_fd, node)
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise OSError(
                        errno.ENOTEMPTY, "refusing to remove a non-empty directory", node
                    ) from None
                raise

    # -- backups -----------------------------------------------------------------

    def backup(self, path: str) -> str | None:
        """Save the current bytes of regular file `path`; its sha256, or None if nothing saved."""
        if self._backup_dir is None:
            return None
        with self._parent(path) as (dir_fd, name, node):
            return self._backup_at(dir_fd, name, node)

    def _backup_at(self, dir_fd: int, name: str, node: str) -> str | None:
        if self._backup_dir is None:
            return None
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise _located(error, node) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return self._store_backup(fd, self._backup_dir, node)
        finally:
            os.close(fd)

    def _store_backup(self, source: int, backup_dir: str, node: str) -> str:
        """Copy `source` into backup_dir as <sha256> (mode 0600), then enforce the cap."""
        try:
            os.makedirs(os.path.dirname(backup_dir), exist_ok=True)
            try:
                os.mkdir(backup_dir, 0o700)
                os.chmod(backup_dir, 0o700)
            except FileExistsError:
                pass
            dir_fd = os.open(backup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise OSError(
                error.errno, f"{error.strerror} (backing up {node})", backup_dir
            ) from None
        try:
            temp = f".backup-{secrets.token_hex(8)}"
            digest = hashlib.sha256()
            try:
                out = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=dir_fd)
                try:
                    while chunk := os.read(source, _CHUNK):
                        digest.update(chunk)
                        _write_all(out, chunk)
                    os.fsync(out)
                finally:
                    os.close(out)
                sha = digest.hexdigest()
                if _lstat_at(dir_fd, sha) is None:
                    os.rename(temp, sha, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                else:
                    os.unlink(temp, dir_fd=dir_fd)
                    os.utime(sha, dir_fd=dir_fd, follow_symlinks=False)
                os.fsync(dir_fd)
                self._evict(dir_fd, keep=sha)
            except OSError as error:
                _unlink_quietly(dir_fd, temp)
                raise OSError(
                    error.errno,
                    f"{error.strerror} (backing up {node})",
                    os.path.join(backup_dir, temp),
                ) from None
            return sha
        finally:
            os.close(dir_fd)

    def _evict(self, dir_fd: int, keep: str) -> None:
        """Delete the least recently saved backups beyond the cap (never `keep`)."""
        saved: list[tuple[int, str]] = []
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if _DIGEST.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    saved.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        excess = len(saved) - self._backup_limit
        if excess <= 0:
            return
        for _, name in sorted(item for item in saved if item[1] != keep)[:excess]:
            _unlink_quietly(dir_fd, name)

    # -- names and commands ------------------------------------------------------

    def user_id(self, name: str) -> int:
        """The uid of a user name on the host running reconciler (digits are taken as is)."""
        if name.isascii() and name.isdigit():
            return int(name)
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            raise UnknownName(
                f"unknown user {name!r} (names resolve on the host running reconciler)"
            ) from None

    def group_id(self, name: str) -> int:
        """The gid of a group name on the host running reconciler (digits are taken as is)."""
        if name.isascii() and name.isdigit():
            return int(name)
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            raise UnknownName(
                f"unknown group {name!r} (names resolve on the host running reconciler)"
            ) from None

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        """Run a command on the host: a str through /bin/sh -c, a list directly.

        It runs in its own session with stdin from /dev/null, a minimal environment
        (PATH, LANG, HOME) plus `env` plus RECONCILER_ROOT, in host directory `cwd`
        (default: the root). On timeout the whole process group gets SIGTERM, then
        SIGKILL after KILL_GRACE seconds. Background processes the command leaves
        behind are not waited for once it exits (nor killed, unless it timed out).
        `mutates` only matters to wrappers (audit mode lets `mutates=False` through).
        """
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        if not argv:
            return CommandResult(127, "", "empty command")
        full_env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": _home()}
        full_env.update(env or {})
        full_env["RECONCILER_ROOT"] = self._root
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd if cwd is not None else self._root,
                env=full_env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            code = 127 if error.errno == errno.ENOENT else 126
            return CommandResult(code, "", f"cannot start {argv[0]!r}: {error}")
        return _collect(process, timeout)


class _Tail:
    """The last OUTPUT_LIMIT bytes of a stream, and how many were dropped before them."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - OUTPUT_LIMIT
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        return f"[{self.dropped} earlier bytes dropped]\n{text}" if self.dropped else text


def _exited(pid: int) -> bool:
    """Has the child exited? It is not reaped, so its pid (= process group id) stays reserved."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pump(selector: selectors.BaseSelector, tails: dict[int, _Tail], until: float) -> None:
    """Read whatever output arrives within a short step (shorter once both pipes closed)."""
    step = 0.1 if selector.get_map() else 0.005
    wait = max(0.0, min(step, until - time.monotonic()))
    if not selector.get_map():
        time.sleep(wait)
        return
    for key, _ in selector.select(wait):
        chunk = os.read(key.fd, 65536)
        if chunk:
            tails[key.fd].add(chunk)
        else:
            selector.unregister(key.fd)


def _collect(process: subprocess.Popen[bytes], timeout: float | None) -> CommandResult:
    """Read both output streams until the command is done, enforcing the timeout."""
    if process.stdout is None or process.stderr is None:
        raise ValueError("_collect needs a process started with both output pipes")
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    tails = {out_fd: _Tail(), err_fd: _Tail()}
    selector = selectors.DefaultSelector()
    for fd in tails:
        selector.register(fd, selectors.EVENT_READ)
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    exited_at: float | None = None
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and _exited(process.pid):
                exited_at = now
            if exited_at is not None and (not selector.get_map() or now - exited_at > DRAIN_GRACE):
                break
            if now >= deadline:
                timed_out = True
                break
            _pump(selector, tails, deadline)
        if timed_out:
            _kill_group(process.pid, signal.SIGTERM)
            grace_end = time.monotonic() + KILL_GRACE
            while time.monotonic() < grace_end and not (
                _exited(process.pid) and not selector.get_map()
            ):
                _pump(selector, tails, grace_end)
            # The leader is still unreaped, so its pgid cannot have been reused.
            _kill_group(process.pid, signal.SIGKILL)
            drain_end = time.monotonic() + DRAIN_GRACE
            while selector.get_map() and time.monotonic() < drain_end:
                _pump(selector, tails, drain_end)
    except BaseException:
        # Interrupted (e.g. Ctrl-C): take the whole command down with us.
        _kill_group(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    returncode = process.wait()
    return CommandResult(
        returncode=returncode,
        stdout=tails[out_fd].text(),
        stderr=tails[err_fd].text(),
        timed_out=timed_out,
    )


def _refused(call: str, target: str) -> WriteRefused:
    return WriteRefused(f"{call} {target}: refused, the system is read-only (audit mode)")


class ReadOnlySystem:
    """Audit mode: reads and `run(mutates=False)` go through; every write raises WriteRefused."""

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

    def user_id(self, name: str) -> int:
        return self._inner.user_id(name)

    def group_id(self, name: str) -> int:
        return self._inner.group_id(name)

    def host_path(self, path: str) -> str:
        return self._inner.host_path(path)

    def caching(self) -> AbstractContextManager[None]:
        return self._inner.caching()

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
    ) -> None:
        raise _refused("write_atomic", path)

    def chmod(self, path: str, mode: int) -> None:
        raise _refused("chmod", path)

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        raise _refused("chown", path)

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        raise _refused("mkdir", path)

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
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
            raise _refused("run", _describe(command))
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


class LoggingSystem:
    """Debug mode: one line per call (call, path or command, outcome, duration), never contents."""

    def __init__(self, inner: System, log: Callable[[str], None]) -> None:
        self._inner = inner
        self._log = log

    @property
    def root(self) -> str:
        return self._inner.root

    @property
    def can_chown(self) -> bool:
        return self._inner.can_chown

    @property
    def runs_host_commands(self) -> bool:
        return self._inner.runs_host_commands

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

    def user_id(self, name: str) -> int:
        return self._call("user_id", name, lambda: self._inner.user_id(name), str)

    def group_id(self, name: str) -> int:
        return self._call("group_id", name, lambda: self._inner.group_id(name), str)

    def host_path(self, path: str) -> str:
        return self._inner.host_path(path)

    def caching(self) -> AbstractContextManager[None]:
        return self._inner.caching()

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
    ) -> None:
        size = "secret" if secret else f"{len(data)} bytes"
        checked = ", validated" if validate else ""
        self._call(
            "write_atomic",
            f"{path} ({size}, mode {mode:04o}, owner {_owner(uid, gid)}{checked})",
            lambda: self._inner.write_atomic(path, data, mode, uid, gid, validate, secret=secret),
        )

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
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
    ) -> None:
        self._call(
            "symlink",
            f"{path} -> {target}",
            lambda: self._inner.symlink(path, target, uid=uid, gid=gid),
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
            _describe(command),
            lambda: self._inner.run(command, timeout=timeout, cwd=cwd, env=env, mutates=mutates),
            _run_outcome,
        )
