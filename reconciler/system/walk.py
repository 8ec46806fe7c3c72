"""Walking node paths below a root without ever following a symlink.

Every path is opened one component at a time from a directory file descriptor
(openat style) with O_NOFOLLOW, so a symlink planted anywhere in a managed path cannot
redirect a read or a write elsewhere. Within one run (`Walker.caching`) the directory
fds are reused and what the run writes is made durable in one batch (`Walker.caching`
says why that is safe).
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import secrets
import stat
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from reconciler.system.durable import File, little_unwritten, sync_each, sync_filesystems
from reconciler.system.interface import NotDurable, UnsafePath
from reconciler.system.release import Releaser

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1024 * 1024
WALK_CACHE = 128  # directory fds kept open while caching (least recently used go first)
PENDING_SYNCS = 256  # directories whose sync may wait; beyond this they are synced at once
PENDING_FILES = 128  # files kept open for their own fsync (system/durable.py)


def path_parts(path: str) -> list[str]:
    """Split an absolute node path into components, refusing anything that could escape."""
    if "\0" in path:
        raise UnsafePath(f"path {path!r} contains a NUL byte")
    if not path.startswith("/"):
        raise UnsafePath(f"path {path!r} is not absolute (node paths start with '/')")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"path {path!r} has a '..' component")
    return parts


def node_path(parts: Sequence[str]) -> str:
    return "/" + "/".join(parts)


def kind_of(st_mode: int) -> str:
    """The `Stat.kind` word for a mode."""
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


def located(error: OSError, path: str) -> OSError:
    """The same OS error (same errno, same subclass) naming the node path."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror, path)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def unlink_quietly(dir_fd: int, name: str) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def read_all(fd: int, limit: int | None) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining is None or remaining > 0:
        chunk = os.read(fd, CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return b"".join(chunks)


def temp_name(name: str) -> str:
    """`.<name>.reconciler-XXXXXXXX`, with the name cut so the result fits NAME_MAX."""
    return f".{_cut(name)}.reconciler-{secrets.token_hex(4)}"


def is_temp_of(entry: str, name: str) -> bool:
    """Whether directory entry `entry` is a name `temp_name(name)` could have made: what
    a killed run may leave next to `name`, and nothing else."""
    found = _TEMP.fullmatch(entry)
    return found is not None and found["name"] == _cut(name)


def _cut(name: str) -> str:
    return os.fsdecode(os.fsencode(name)[:200])


_TEMP = re.compile(r"\.(?P<name>.+)\.reconciler-[0-9a-f]{8}", re.DOTALL)


class _Walks:
    """Directory fds of one run, keyed by node path components, and what waits for the
    run's durable sync: the directories whose entries changed, and the files written
    without their own fsync.

    Every fd was opened one component at a time with O_NOFOLLOW from a cached parent,
    so it refers to the real directory that was there, never to a symlink's target.
    """

    def __init__(self) -> None:
        self.dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self.unsynced: dict[str, int] = {}  # node path -> its own fd
        self.files: list[File] = []  # the last files written, each open
        self.filesystems: dict[int, File] = {}  # st_dev -> the first file written there
        self.let_go = False  # files were closed unsynced: only a syncfs makes them durable
        self.failed: NotDurable | None = None
        self.replaced = Releaser()  # the files renamed over, closed beside the run

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

    def defer_file(self, node: str, fd: int) -> None:
        """A file written without fsync: made durable with the batch, by a syncfs of its
        filesystem, or by its own fsync when the kernel holds much unwritten data then
        (system/durable.py). Beyond PENDING_FILES open, the files so far are let go for
        the syncfs if little is unwritten now (a syncfs in the middle of a run would hold
        up the creation of its next files), else synced each at once."""
        device = os.fstat(fd).st_dev
        if device not in self.filesystems:
            self.filesystems[device] = (node, os.dup(fd))
        if len(self.files) >= PENDING_FILES:
            if little_unwritten():
                self.let_go = True
                self._close_files()
            else:
                self._failed(sync_each(self.files))
                self._close_files()
        self.files.append((node, os.dup(fd)))

    def _sync_files(self) -> None:
        filesystems = list(self.filesystems.values())
        try:
            self._failed(sync_filesystems(filesystems) if self.let_go or little_unwritten()
                         else sync_each(self.files))
        finally:
            self._close_files()
            for _, fd in filesystems:
                os.close(fd)
            self.filesystems, self.let_go = {}, False

    def _close_files(self) -> None:
        files, self.files = self.files, []
        for _, fd in files:
            os.close(fd)

    def _failed(self, failed: tuple[str, OSError] | None) -> None:
        if failed is not None and self.failed is None:
            node, error = failed
            self.failed = NotDurable(error.errno, f"cannot sync the files written "
                                                  f"({error.strerror})", node)

    def sync(self) -> None:
        """Make the batch durable: the files written (system/durable.py), then every
        directory changed (the renames into them; by then nearly free, and it reports an
        error of that directory). NotDurable names the first path that failed (all are
        tried and closed)."""
        self._sync_files()
        failed, self.failed = self.failed, None
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
            self.replaced.finish()
            for fd in self.dirs.values():
                os.close(fd)
            self.dirs.clear()


class Walker:
    """Opens directories and final paths below one host root, never through a symlink."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._walks: _Walks | None = None

    @contextmanager
    def caching(self) -> Iterator[None]:
        """For the span of one run: keep walked directories open, and make what the run
        writes durable once, on the way out (or every PENDING_SYNCS directories; past
        PENDING_FILES files, see `_Walks.defer_file`), instead of an fsync per file and
        per directory, one after the other. Durable when this returns (NotDurable if
        not); the caller writes the last-applied record only after that.

        Why a file renamed before it is synced is still old or new, never partial:
        - A process crash (SIGKILL, OOM, a panic of reconciler itself): write() has put
          the whole temp file in the page cache before the rename, and the rename swaps
          the name atomically, so every reader, the next run included, sees the old
          file or the new one. A temp file left behind is removed by the next run
          (apply/leftovers.py). The record is written after the batch, so it never names
          content a killed run did not finish renaming into place.
        - Power loss or a kernel crash before the batch's sync: the journal replays
          renames in order, so a path holds its old file or the new one. On ext4 (its
          default `auto_da_alloc`) a rename over an existing file commits the new file's
          data with the rename, so a replaced file is old or new too; a file created
          where there was none (and, on filesystems without that rule, a replaced one)
          may come back empty. None of these is in the record yet (it is written after
          the sync), so the next run sees content that is not what it recorded and
          writes the file again: nothing is lost, and the record never claims what is
          not on disk. Backups of replaced files are made durable before the first
          replacement is renamed (saved ahead in one sync, `BackupStore.ahead`, or each
          with its own fsyncs): the old content is durable before its replacement can be.
        SIGKILL tests (tests/test_crash_converge.py) cover the first case; the second
        is the filesystem's word, not tested here.

        A directory someone else replaces meanwhile is not seen until the next run:
        writes keep going to the real directory that was opened, never through a
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

    def open_dir(self, parts: Sequence[str], path: str) -> int:
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
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if walks is not None:
                walks.put((), os.dup(fd))
        try:
            for index in range(start, len(parts)):
                name = parts[index]
                here = node_path(parts[: index + 1])
                try:
                    next_fd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as error:
                    if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise located(error, here) from None
                    found = lstat_at(fd, name)
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

    def sync_dir(self, dir_fd: int, node: str) -> None:
        """Make changes to the entries of the directory holding `node` durable (now, or
        when the run's caching ends)."""
        if self._walks is None:
            os.fsync(dir_fd)
        else:
            self._walks.defer_sync(posixpath.dirname(node), dir_fd)

    def sync_file(self, fd: int, node: str) -> None:
        """Make the content of file `fd` (about to be renamed to `node`) durable: now, or
        with the batch when caching (see `caching` for why that is safe)."""
        if self._walks is None:
            os.fsync(fd)
        else:
            self._walks.defer_file(node, fd)

    def hold(self, dir_fd: int, name: str, existing: os.stat_result) -> int | None:
        """While caching, an fd on the file `existing` (`name` in `dir_fd`), about to be
        renamed over: `let_go` then closes it beside the run (system/release.py). None
        when not caching, or when that file is no longer there."""
        if self._walks is None:
            return None
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (existing.st_dev, existing.st_ino):
            os.close(fd)
            return None
        return fd

    def let_go(self, held: int | None) -> None:
        """Close an fd from `hold`: beside the run while caching."""
        if held is None:
            return
        if self._walks is None:
            os.close(held)
        else:
            self._walks.replaced.release(held)

    def forget(self, node: str) -> None:
        """Stop reusing the walk of directory `node` (about to be removed or re-created)."""
        if self._walks is not None:
            self._walks.forget(tuple(path_parts(node)))

    @contextmanager
    def parent(self, path: str) -> Iterator[tuple[int, str, str]]:
        """Yield (parent dir fd, final name, normalized node path); the parent must exist."""
        parts = path_parts(path)
        if not parts:
            raise UnsafePath("the root directory itself cannot be written or removed")
        node = node_path(parts)
        try:
            fd = self.open_dir(parts[:-1], node)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                errno.ENOENT, f"parent directory of {node} does not exist", error.filename
            ) from None
        try:
            yield fd, parts[-1], node
        finally:
            os.close(fd)

    @contextmanager
    def open_final(self, path: str, verb: str) -> Iterator[int]:
        """Yield an fd on an existing file or directory at `path`, refusing anything else."""
        with self.parent(path) as (dir_fd, name, node):
            before = lstat_at(dir_fd, name)
            if before is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", node)
            kind = kind_of(before.st_mode)
            if kind not in ("file", "directory"):
                raise UnsafePath(f"refusing to {verb} {node}: it is a {kind}")
            try:
                fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                raise located(error, node) from None
            try:
                after = os.fstat(fd)
                if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                    raise UnsafePath(f"refusing to {verb} {node}: it changed while being opened")
                yield fd
            finally:
                os.close(fd)
