"""The backup store: the bytes of every regular file replaced or removed, named by sha256,
and an index saying which path each copy was, when, and in which run.

It lives in a host directory outside the node root (/var/lib/reconciler/backups) and
keeps at most `limit` backups, the least recently saved going first. A secret file is
kept only when the store can seal it (age, to the node's own key): its copy is the
ciphertext under a random name, never its plain text nor a hash of it.
"""

# No `from __future__ import annotations`: pydantic would evaluate each field's annotation
# from its string, compiling it first, in every process that builds these models.

import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.atomicfile import write_all
from reconciler.system.durable import sync_files
from reconciler.system.interface import UnsafePath
from reconciler.system.walk import (
    CHUNK,
    DIR_FLAGS,
    READ_FLAGS,
    TEMP_FLAGS,
    located,
    lstat_at,
    unlink_quietly,
)

_KEPT = re.compile(r"[0-9a-f]{64}|secret-[0-9a-f]{32}\.age")
INDEX = "index.jsonl"
Identity = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


class Kept(BaseModel):
    """One line of the index: node path, when and by which run (its start time) it was
    saved, under which name in the store, its sha256 (None for a secret file)."""

    model_config = ConfigDict(frozen=True)

    path: str
    time: datetime
    run: str | None
    name: str
    sha256: str | None
    secret: bool = False


class BackupStore:
    """Saves file contents into `directory` (a host path) as <sha256>, mode 0600, and
    indexes them; `run` labels what this store saves, `seal` encrypts secret files."""

    def __init__(self, directory: str, limit: int = 1000, run: str | None = None,
                 seal: Callable[[bytes], bytes] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"backup_limit must be at least 1, not {limit}")
        self.directory = os.path.abspath(directory)
        self.limit = limit
        self.run = run
        self.seal = seal
        # Copies made durable by `ahead` this run, by node path: the file as it was then
        # and the copy's name. A file still so when it is replaced needs no second copy.
        self._durable: dict[str, tuple[Identity, str]] = {}
        self._pending: dict[str, tuple[Identity, str]] | None = None  # inside `ahead`
        self._doubtful: set[str] = set()  # copies whose `ahead` sync failed
        self._copied: set[str] = set()  # inside `ahead`: copies written (not kept already)

    @contextmanager
    def ahead(self) -> Iterator[None]:
        """Copies saved inside this are made durable together on the way out (all at
        once, then the index and the store, instead of three fsyncs each one after the
        other), before any of the files they copy is replaced: a run saves the
        files it is about to replace first. A copy kept already (the same edit undone
        again) is not synced again. A copy the sync fails to make durable is made again,
        with its own fsyncs, when its file is replaced (and that says what is wrong)."""
        self._pending, self._copied = {}, set()
        try:
            yield
        finally:
            pending, self._pending = self._pending, None
            if pending:
                try:
                    self._sync_pending(pending)
                except OSError:
                    self._doubtful.update(name for _, name in pending.values())

    def _sync_pending(self, pending: dict[str, tuple[Identity, str]]) -> None:
        dir_fd = os.open(self.directory, DIR_FLAGS)
        try:
            _sync_copies(dir_fd, sorted(self._copied))
            _fsync_at(dir_fd, INDEX)
            os.fsync(dir_fd)
            self._durable.update(pending)
            self._evict(dir_fd, keep={name for _, name in pending.values()})
        finally:
            os.close(dir_fd)

    def save_at(self, dir_fd: int, name: str, node: str, secret: bool = False) -> str | None:
        """Save regular file `name` of the open directory; the name of its copy, or None
        when there is no regular file to save (missing, a symlink, anything else) or it
        is secret and cannot be sealed."""
        if secret and self.seal is None:
            return None
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise located(error, node) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None
            identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
                        info.st_ctime_ns)
            durable = self._durable.get(node)
            if durable is not None and durable[0] == identity and not secret:
                return durable[1]
            sha = self._store(fd, node, secret)
            if self._pending is not None and not secret:
                self._pending[node] = (identity, sha)
            return sha
        finally:
            os.close(fd)

    def _store(self, source: int, node: str, secret: bool) -> str:
        """Copy `source` into the store as <sha256> (sealed under a random name if
        `secret`; mode 0600), index it, then enforce the cap; each step made durable
        before the next, unless the copy is one of `ahead`'s."""
        durable = self._pending is None or secret
        backup_dir = self.directory
        try:
            os.makedirs(os.path.dirname(backup_dir), exist_ok=True)
            try:
                os.mkdir(backup_dir, 0o700)
                os.chmod(backup_dir, 0o700)
            except FileExistsError:
                pass
            # Never through a link: a planted `backups` symlink must not take copies elsewhere.
            dir_fd = os.open(backup_dir, DIR_FLAGS)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(f"{backup_dir} is not a directory of its own (a symlink?); "
                                 f"refusing to back up {node} into it") from None
            raise OSError(
                error.errno, f"cannot back up {node} before replacing it, so it is left as "
                             f"it is: {error.strerror}", backup_dir
            ) from None
        try:
            temp = f".backup-{secrets.token_hex(8)}"
            digest = hashlib.sha256()
            try:
                out = os.open(temp, TEMP_FLAGS, 0o600, dir_fd=dir_fd)
                try:
                    if secret and self.seal is not None:
                        write_all(out, self.seal(_read_all(source)))
                    else:
                        while chunk := os.read(source, CHUNK):
                            digest.update(chunk)
                            write_all(out, chunk)
                    if durable:
                        os.fsync(out)
                finally:
                    os.close(out)
                sha = f"secret-{secrets.token_hex(16)}.age" if secret else digest.hexdigest()
                if lstat_at(dir_fd, sha) is None:
                    os.rename(temp, sha, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    self._copied.add(sha)
                else:
                    os.unlink(temp, dir_fd=dir_fd)
                    os.utime(sha, dir_fd=dir_fd, follow_symlinks=False)
                    if sha in self._doubtful:
                        if durable:
                            _fsync_at(dir_fd, sha)
                            self._doubtful.discard(sha)
                        else:
                            self._copied.add(sha)
                self._index(dir_fd, Kept(path=node, time=datetime.now(UTC), run=self.run,
                                         name=sha, sha256=None if secret else sha,
                                         secret=secret), durable)
                if durable:
                    os.fsync(dir_fd)
                    self._evict(dir_fd, keep={sha})
            except OSError as error:
                unlink_quietly(dir_fd, temp)
                raise OSError(
                    error.errno,
                    f"cannot back up {node} before replacing it, so it is left as it is: "
                    f"{error.strerror}",
                    backup_dir,
                ) from None
            return sha
        finally:
            os.close(dir_fd)

    def _evict(self, dir_fd: int, keep: set[str]) -> None:
        """Delete the least recently saved backups beyond the cap (never those in `keep`). Their
        times are read only when the cap is passed: a run that backs up a hundred files
        would otherwise stat the whole store a hundred times."""
        with os.scandir(dir_fd) as entries:
            kept = [entry for entry in entries if _KEPT.fullmatch(entry.name)]
        if len(kept) <= self.limit:
            return
        saved = [(entry.stat(follow_symlinks=False).st_mtime_ns, entry.name) for entry in kept
                 if entry.is_file(follow_symlinks=False)]
        excess = len(saved) - self.limit
        if excess <= 0:
            return
        for _, name in sorted(item for item in saved if item[1] not in keep)[:excess]:
            unlink_quietly(dir_fd, name)

    def _index(self, dir_fd: int, kept: Kept, durable: bool) -> None:
        """Append one line to the index (appends of one short line do not interleave)."""
        fd = os.open(INDEX, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            write_all(fd, kept.model_dump_json().encode() + b"\n")
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)


def kept_for(directory: str, path: str) -> list[Kept]:
    """What the store still keeps of node `path`, oldest first (index lines whose copy
    was evicted, or that cannot be read, are left out)."""
    try:
        with open(os.path.join(directory, INDEX), "rb") as index:
            lines = index.read().splitlines()
    except FileNotFoundError:
        return []
    found: list[Kept] = []
    for line in lines:
        try:
            kept = Kept.model_validate_json(line)
        except ValidationError:
            continue
        if kept.path == path and _KEPT.fullmatch(kept.name) and \
                os.path.isfile(os.path.join(directory, kept.name)):
            found.append(kept)
    return found


def read_kept(directory: str, kept: Kept) -> bytes:
    """The stored bytes of `kept` (a secret file's are its ciphertext)."""
    with open(os.path.join(directory, kept.name), "rb") as copy:
        return copy.read()


def _sync_copies(dir_fd: int, names: list[str]) -> None:
    """Make the copies `names` of the store durable together (system/durable.py)."""
    fds = []
    try:
        for name in names:
            fds.append((name, os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      dir_fd=dir_fd)))
        failed = sync_files(fds)
    finally:
        for _, fd in fds:
            os.close(fd)
    if failed is not None:
        raise failed[1]


def _fsync_at(dir_fd: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)
