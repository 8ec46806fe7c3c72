"""The backup store: the bytes of every regular file replaced or removed, named by sha256.

It lives in a host directory outside the node root (/var/lib/reconciler/backups) and
keeps at most `limit` backups, the least recently saved going first.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat

from reconciler.system.interface import UnsafePath
from reconciler.system.walk import (
    CHUNK,
    DIR_FLAGS,
    READ_FLAGS,
    TEMP_FLAGS,
    located,
    lstat_at,
    unlink_quietly,
    write_all,
)

_DIGEST = re.compile(r"[0-9a-f]{64}")


class BackupStore:
    """Saves file contents into `directory` (a host path) as <sha256>, mode 0600."""

    def __init__(self, directory: str, limit: int = 1000) -> None:
        if limit < 1:
            raise ValueError(f"backup_limit must be at least 1, not {limit}")
        self.directory = os.path.abspath(directory)
        self.limit = limit

    def save_at(self, dir_fd: int, name: str, node: str) -> str | None:
        """Save regular file `name` of the open directory; its sha256, or None when there
        is no regular file to save (missing, a symlink, anything else)."""
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise located(error, node) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return self._store(fd, node)
        finally:
            os.close(fd)

    def _store(self, source: int, node: str) -> str:
        """Copy `source` into the store as <sha256> (mode 0600), then enforce the cap."""
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
                    while chunk := os.read(source, CHUNK):
                        digest.update(chunk)
                        write_all(out, chunk)
                    os.fsync(out)
                finally:
                    os.close(out)
                sha = digest.hexdigest()
                if lstat_at(dir_fd, sha) is None:
                    os.rename(temp, sha, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                else:
                    os.unlink(temp, dir_fd=dir_fd)
                    os.utime(sha, dir_fd=dir_fd, follow_symlinks=False)
                os.fsync(dir_fd)
                self._evict(dir_fd, keep=sha)
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

    def _evict(self, dir_fd: int, keep: str) -> None:
        """Delete the least recently saved backups beyond the cap (never `keep`)."""
        saved: list[tuple[int, str]] = []
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if _DIGEST.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    saved.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        excess = len(saved) - self.limit
        if excess <= 0:
            return
        for _, name in sorted(item for item in saved if item[1] != keep)[:excess]:
            unlink_quietly(dir_fd, name)
