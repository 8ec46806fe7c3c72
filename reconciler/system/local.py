"""`LocalSystem`: the real node, rooted at a host directory.

It never follows a symlink below its root: every path is walked one component at a
time from a directory file descriptor (walk.py), so a symlink planted anywhere in a
managed path cannot redirect a read or a write elsewhere.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import posixpath
import pwd
import stat
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress

from reconciler.atomicfile import write_all
from reconciler.system import validation, xattrs
from reconciler.system.backups import BackupStore
from reconciler.system.candidate import has_candidate
from reconciler.system.interface import (
    CommandResult,
    Stat,
    UnknownName,
    UnsafePath,
    ValidationFailed,
)
from reconciler.system.process import run_command
from reconciler.system.walk import (
    DIR_FLAGS,
    READ_FLAGS,
    TEMP_FLAGS,
    Walker,
    kind_of,
    located,
    lstat_at,
    node_path,
    path_parts,
    read_all,
    temp_name,
    unlink_quietly,
)


class LocalSystem:
    """The real node, rooted at `root`, walking every path without following symlinks.

    `backup_dir` (a host path) keeps the bytes of every regular file replaced or removed,
    named by sha256, at most `backup_limit` of them (the least recently saved go first),
    indexed with `backup_run`; a secret file only sealed by `backup_seal`.
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
        backup_run: str | None = None,
        backup_seal: Callable[[bytes], bytes] | None = None,
    ) -> None:
        if "\0" in root:
            raise UnsafePath(f"root {root!r} contains a NUL byte")
        self._root = os.path.abspath(root)
        self._can_chown = os.geteuid() == 0
        self._host_commands = self._root == "/" if host_commands is None else host_commands
        self._backups = BackupStore(backup_dir, backup_limit, backup_run, backup_seal) \
            if backup_dir is not None else None
        self._walker = Walker(self._root)

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
        parts = path_parts(path)
        return os.path.join(self._root, *parts) if parts else self._root

    def caching(self) -> AbstractContextManager[None]:
        """The span of one run: walks reused, directory syncs batched (see `Walker.caching`)."""
        return self._walker.caching()

    @contextmanager
    def scratch_file(self, name: str, data: bytes) -> Iterator[str]:
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise UnsafePath(f"scratch file name {name!r} is not a plain file name")
        with tempfile.TemporaryDirectory(prefix="reconciler-scratch-") as scratch:
            path = os.path.join(scratch, name)
            fd = os.open(path, TEMP_FLAGS, 0o600)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            yield path

    # -- reading -----------------------------------------------------------------

    def lstat(self, path: str) -> Stat | None:
        """The live state of `path` without following it; None when it (or a parent) is missing."""
        parts = path_parts(path)
        node = node_path(parts)
        try:
            dir_fd = self._walker.open_dir(parts[:-1], node)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            if not parts:
                found: os.stat_result | None = os.fstat(dir_fd)
            else:
                found = lstat_at(dir_fd, parts[-1])
            if found is None:
                return None
            target = None
            if stat.S_ISLNK(found.st_mode):
                target = os.readlink(parts[-1], dir_fd=dir_fd)
        except OSError as error:
            raise located(error, node) from None
        finally:
            os.close(dir_fd)
        return Stat(
            kind=kind_of(found.st_mode),
            mode=stat.S_IMODE(found.st_mode),
            uid=found.st_uid,
            gid=found.st_gid,
            size=found.st_size,
            nlink=found.st_nlink,
            link_target=target,
        )

    def read(self, path: str, limit: int | None = None) -> bytes:
        """The bytes of a regular file (at most `limit`); anything else is UnsafePath."""
        with self._walker.parent(path) as (dir_fd, name, node):
            found = lstat_at(dir_fd, name)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", node)
            if not stat.S_ISREG(found.st_mode):
                raise UnsafePath(f"refusing to read {node}: it is a {kind_of(found.st_mode)}")
            try:
                fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise UnsafePath(f"refusing to read {node}: it is a symlink") from None
                raise located(error, node) from None
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    raise UnsafePath(f"refusing to read {node}: it is a {kind_of(opened.st_mode)}")
                return read_all(fd, limit)
            except OSError as error:
                raise located(error, node) from None
            finally:
                os.close(fd)

    def listdir(self, path: str) -> list[str]:
        """Sorted entry names of a directory (a symlinked directory is UnsafePath)."""
        parts = path_parts(path)
        fd = self._walker.open_dir(parts, node_path(parts))
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def lock_holder(self, path: str) -> int | None:
        """The pid holding an fcntl lock on file `path` that would stop us writing to it
        (0 or less when the kernel does not say whose), None when it is free or the file
        does not exist. The lock is only tested (F_GETLK), never taken."""
        try:
            with self._walker.open_final(path, "test the lock of") as fd:
                return _lock_holder(fd)
        except FileNotFoundError:
            return None

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
    ) -> str | None:
        """Replace `path` with `data`: temp file, owner and mode, fsync (or the run's one
        batched sync, `Walker.caching`), validate, rename.

        The parent directory must exist. A symlink at `path` is replaced, never followed;
        a hard-linked file is replaced, so its other names keep the old content. Owner or
        group left as None keep those of the file being replaced, and so do its extended
        attributes (xattrs.py). `validate` is a command with `%s` for the new content
        (validation.py); returns why it was not validated, or None. Any failure leaves the
        live file untouched and removes the temporary file.
        """
        if validate is not None and not has_candidate(validate):
            raise ValidationFailed(
                f"validate command for {path} has no %s for the new file: {validate!r}",
                command=validate,
            )
        with self._walker.parent(path) as (dir_fd, name, node):
            existing = lstat_at(dir_fd, name)
            replaces_file = False
            if existing is not None:
                kind = kind_of(existing.st_mode)
                if kind not in ("file", "symlink"):
                    raise UnsafePath(f"refusing to replace {node}: it is a {kind}")
                _refuse_foreign_link(existing, uid, node)
                replaces_file = kind == "file"
                if kind == "file":
                    self._backup_at(dir_fd, name, node, secret)
                    uid = existing.st_uid if uid is None else uid
                    gid = existing.st_gid if gid is None else gid
            temp, fd = self._create_temp(dir_fd, name, node)
            try:
                try:
                    write_all(fd, data)
                    if replaces_file:
                        xattrs.carry_over(dir_fd, name, fd)
                    self._fchown(fd, uid, gid)
                    os.fchmod(fd, mode & 0o7777)  # after fchown, which clears set-id bits
                    self._walker.sync_file(fd, node)
                finally:
                    os.close(fd)
                note = None if validate is None else \
                    self._validate(validate, dir_fd, name, node, temp, secret)
                # The file replaced is freed beside the run, not inside the rename.
                held = self._walker.hold(dir_fd, name, existing) \
                    if replaces_file and existing is not None else None
                try:
                    os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                finally:
                    self._walker.let_go(held)
                self._walker.sync_dir(dir_fd, node)
                return note
            except OSError as error:
                unlink_quietly(dir_fd, temp)
                raise located(error, node) from None
            except BaseException:
                unlink_quietly(dir_fd, temp)
                raise

    def _create_temp(self, dir_fd: int, name: str, node: str) -> tuple[str, int]:
        for _ in range(100):
            temp = temp_name(name)
            try:
                return temp, os.open(temp, TEMP_FLAGS, 0o600, dir_fd=dir_fd)
            except FileExistsError:
                continue
            except OSError as error:
                raise located(error, node) from None
        raise FileExistsError(errno.EEXIST, "no free temporary file name next to", node)

    def _fchown(self, fd: int, uid: int | None, gid: int | None) -> None:
        if self._can_chown and (uid is not None or gid is not None):
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)

    def _validate(self, command: str, dir_fd: int, name: str, node: str, temp: str,
                  secret: bool) -> str | None:
        with validation.real_name(dir_fd, temp, name) as candidate:
            return validation.validate(self, command, node,
                                       posixpath.join(posixpath.dirname(node), candidate),
                                       secret=secret)

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits of a file or directory (symlinks and special files refused),
        durably (now, or with the run's batch)."""
        with self._walker.open_final(path, "chmod") as fd:
            try:
                os.fchmod(fd, mode & 0o7777)
                self._walker.sync_file(fd, path)
            except OSError as error:
                raise located(error, path) from None

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        """Set owner/group of a file or directory; a no-op when not root (`can_chown`)."""
        if not self._can_chown or (uid is None and gid is None):
            return
        with self._walker.open_final(path, "chown") as fd:
            try:
                self._fchown(fd, uid, gid)
                self._walker.sync_file(fd, path)
            except OSError as error:
                raise located(error, path) from None

    def mkdir(self, path: str, mode: int, uid: int | None, gid: int | None) -> None:
        """Create one directory (its parent must exist) with exactly this owner and mode."""
        with self._walker.parent(path) as (dir_fd, name, node):
            self._walker.forget(node)  # a directory removed by someone else
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except OSError as error:
                raise located(error, node) from None
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
                try:
                    self._fchown(fd, uid, gid)
                    os.fchmod(fd, mode & 0o7777)
                finally:
                    os.close(fd)
                self._walker.sync_dir(dir_fd, node)
            except OSError as error:
                with suppress(OSError):
                    os.rmdir(name, dir_fd=dir_fd)
                raise located(error, node) from None

    def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None,
        secret: bool = False,
    ) -> None:
        """Point `path` at `target` atomically (temp link, rename); a directory there is
        refused. A regular file there is backed up first unless `secret` (it held a secret)."""
        if not target or "\0" in target:
            raise UnsafePath(f"invalid symlink target {target!r} for {path}")
        with self._walker.parent(path) as (dir_fd, name, node):
            existing = lstat_at(dir_fd, name)
            if existing is not None:
                kind = kind_of(existing.st_mode)
                if kind not in ("file", "symlink"):
                    raise UnsafePath(f"refusing to replace {node} with a symlink: it is a {kind}")
                _refuse_foreign_link(existing, uid, node)
                if kind == "file" and not secret:
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
                self._walker.sync_dir(dir_fd, node)
            except OSError as error:
                unlink_quietly(dir_fd, temp)
                raise located(error, node) from None

    def _create_temp_link(self, dir_fd: int, name: str, node: str, target: str) -> str:
        for _ in range(100):
            temp = temp_name(name)
            try:
                os.symlink(target, temp, dir_fd=dir_fd)
            except FileExistsError:
                continue
            except OSError as error:
                raise located(error, node) from None
            return temp
        raise FileExistsError(errno.EEXIST, "no free temporary file name next to", node)

    def remove(self, path: str, *, secret: bool = False) -> None:
        """Remove a file, symlink or empty directory; a missing path is left alone.

        A non-empty directory is refused (OSError ENOTEMPTY). A regular file is backed
        up first (a `secret` one only sealed).
        """
        if self.lstat(path) is None:
            return
        with self._walker.parent(path) as (dir_fd, name, node):
            existing = lstat_at(dir_fd, name)
            if existing is None:
                return
            try:
                if stat.S_ISDIR(existing.st_mode):
                    self._walker.forget(node)
                    os.rmdir(name, dir_fd=dir_fd)
                else:
                    if stat.S_ISREG(existing.st_mode):
                        self._backup_at(dir_fd, name, node, secret)
                    os.unlink(name, dir_fd=dir_fd)
                self._walker.sync_dir(dir_fd, node)
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise OSError(
                        errno.ENOTEMPTY, "refusing to remove a non-empty directory", node
                    ) from None
                raise

    # -- backups -----------------------------------------------------------------

    def backup(self, path: str) -> str | None:
        """Save the current bytes of regular file `path`; its sha256, or None if nothing saved."""
        if self._backups is None:
            return None
        with self._walker.parent(path) as (dir_fd, name, node):
            return self._backups.save_at(dir_fd, name, node)

    def back_up_ahead(self, paths: Iterable[str]) -> None:
        """Save the regular files at `paths`, about to be replaced, all made durable at
        once (`BackupStore.ahead`); one that cannot be saved now is left to its own
        backup when it is replaced, which says what is wrong."""
        if self._backups is None:
            return
        with self._backups.ahead():
            for path in paths:
                with suppress(OSError, UnsafePath), \
                        self._walker.parent(path) as (dir_fd, name, node):
                    self._backups.save_at(dir_fd, name, node)

    def _backup_at(self, dir_fd: int, name: str, node: str, secret: bool = False) -> None:
        if self._backups is not None:
            self._backups.save_at(dir_fd, name, node, secret)

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
        """Run a command on the host (see `run_command`), in the root unless `cwd` says
        otherwise. `mutates` only matters to wrappers (audit mode lets `mutates=False`
        through)."""
        return run_command(command, root=self._root, timeout=timeout, cwd=cwd, env=env)


def _refuse_foreign_link(found: os.stat_result, declared_uid: int | None, node: str) -> None:
    """UnsafePath for a symlink someone else put where reconciler is about to write."""
    live = Stat(kind=kind_of(found.st_mode), mode=stat.S_IMODE(found.st_mode),
                uid=found.st_uid, gid=found.st_gid, size=found.st_size, nlink=found.st_nlink)
    why = live.foreign_link(declared_uid)
    if why is not None:
        raise UnsafePath(f"{node} {why}")


def _lock_holder(fd: int) -> int | None:
    """The pid holding a conflicting fcntl lock on the open file, or None if it is free."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (native layout; off_t is 64-bit).
    layout = "hhqqi"
    request = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
    lock_type, _whence, _start, _length, pid = struct.unpack(layout, answer)
    return None if lock_type == fcntl.F_UNLCK else pid
