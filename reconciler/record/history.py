"""The *record* stage: the node's own audit trail, a git repository of what each run did.

`<state_dir>/history` is a bare repository (no working tree to corrupt). Each record
is one commit on `main` whose tree is a snapshot of the managed files at their node
paths without the leading slash (`etc/nginx/nginx.conf`) plus `run.json`, and whose
message is a one-line summary followed by trailers (`Config-Commit:`, `Node:`, ...).

A record is one `git fast-import`: the blobs, trees and commit go into one pack (one
fsync, where loose objects cost one each), and the branch moves only once the pack is
in place, from the commit it was at. Every git write is atomic, so a run killed at any
moment leaves a repository `git fsck --strict` finds clean.

History stores exactly the bytes it is given. Secrets must be passed as their sha256
text (or left out) by the caller: this module never sees, and so never stores, what
it is not given.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import Problem
from reconciler.git import Git, GitFailed, init_bare, read_ref

BRANCH = "refs/heads/main"
RUN_JSON = "run.json"

_TRAILER_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Lock files a killed git command can leave; only reconciler writes here, under the node lock.
_LOCKS = ("HEAD.lock", "config.lock", "packed-refs.lock", f"{BRANCH}.lock")
# The repository is reconciler's own: no hook planted in it may run.
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
_CRASH_REPORT = re.compile(r"^fast-import: dumping crash report.*$", re.MULTILINE)
_GC_AUTO_PACKS = 50  # git's default gc.autoPackLimit
_NOT_IN_EMAIL = str.maketrans("", "", "<>\n")


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded run, parsed back from its commit."""

    sha: str
    time: datetime
    summary: str
    trailers: dict[str, str]
    changed: list[str]  # node paths ("/etc/...") that changed in this commit; run.json left out


def tree_path(node_path: str) -> str:
    """The snapshot path of a node path: `/etc/x.conf` -> `etc/x.conf` (validated)."""
    relative = node_path.lstrip("/")
    parts = relative.split("/")
    if not relative or any(part in ("", ".", "..", ".git") for part in parts):
        raise ValueError(f"bad path for the history snapshot: {node_path!r}")
    if relative == RUN_JSON:
        raise ValueError(f"{node_path!r} collides with the run report {RUN_JSON}")
    return relative


def _message(summary_line: str, trailers: Mapping[str, str]) -> str:
    if not summary_line.strip() or _CONTROL_RE.search(summary_line):
        raise ValueError(f"summary must be one non-empty line: {summary_line!r}")
    lines = []
    for key, value in trailers.items():
        if not _TRAILER_KEY_RE.match(key):
            raise ValueError(f"bad trailer key {key!r}")
        if not value.strip() or _CONTROL_RE.search(value):
            raise ValueError(f"trailer {key} needs a non-empty one-line value, got {value!r}")
        lines.append(f"{key}: {value.strip()}")
    body = "\n".join(lines)
    return f"{summary_line.strip()}\n\n{body}\n" if body else f"{summary_line.strip()}\n"


def _parse_trailers(message: str) -> dict[str, str]:
    paragraphs = message.strip().split("\n\n")
    if len(paragraphs) < 2:
        return {}
    trailers = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or not _TRAILER_KEY_RE.match(key):
            return {}
        trailers[key] = value
    return trailers


def _quoted(path: str) -> bytes:
    """A path as fast-import reads it: C-quoted, so that any byte a name may hold (a
    newline, a quote, a leading space) stays part of it."""
    escaped = path.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"%s"' % escaped.replace(b"\n", b"\\n")


class History:
    """The history repository at `path`; the committer is `reconciler <reconciler@NODE>`."""

    def __init__(self, path: str | os.PathLike[str], node: str | None = None) -> None:
        self.path = Path(path)
        self.node = node or socket.getfqdn()

    def _git(self, *args: str) -> str:
        """Stdout of a git command that writes or walks the repository; `GitFailed` when
        it fails. Hooks are off (`_NO_HOOKS`)."""
        return self._repo().out(*_NO_HOOKS, *args)

    def _repo(self) -> Git:
        """Git in the repository, which must be a directory of its own, not a link."""
        if self.path.is_symlink():
            raise GitFailed([Problem("the history repository is a symlink; refusing to "
                                     "follow it (remove it if reconciler did not make it)",
                                     str(self.path))])
        return Git(self.path)

    def exists(self) -> bool:
        """Whether the repository was made (a symlink in its place is refused)."""
        self._repo()
        return (self.path / "HEAD").is_file()

    def init(self) -> None:
        """Create the repository if needed: built beside its place, then renamed in."""
        if self.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        try:
            done = init_bare(building, {
                "user.name": "reconciler", "user.email": f"reconciler@{self.node}",
                "core.logAllRefUpdates": "true", "core.fsync": "committed",
                "gc.autoDetach": "false",
            })  # fmt: skip
            if not done.ok:
                raise GitFailed.of(building, done)
            os.rename(building, self.path)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def damaged(self) -> bool:
        """Whether something stands here that is no sound repository: not a directory, or
        one `git fsck` finds broken (a disk that is merely full leaves it sound)."""
        if not os.path.lexists(self.path):
            return False
        if not self.path.is_dir() or self.path.is_symlink():
            return True
        return not self._repo().run("fsck", "--no-dangling", "--no-progress").ok

    def head(self) -> str | None:
        """The newest record's commit, or None before the first record: read from the ref
        file, or packed-refs once `gc` packed it, as git reads it (without a process)."""
        if not self.exists():
            return None
        try:
            return read_ref(self.path, BRANCH)
        except (OSError, ValueError):  # not a plain ref: git says what it is
            found = self._repo().ok("rev-parse", "--verify", "--quiet", BRANCH)
            return found.strip() or None if found else None

    def _clear_leftovers(self) -> None:
        """Remove what a killed or failed record leaves (the caller holds the node lock):
        lock files, a pack git did not finish, fast-import's crash reports."""
        for name in _LOCKS:
            (self.path / name).unlink(missing_ok=True)
        for temp in self.path.glob("objects/pack/tmp_*"):
            temp.unlink(missing_ok=True)
        for report in self.path.glob("fast_import_crash_*"):
            report.unlink(missing_ok=True)

    def record(
        self,
        files: Mapping[str, bytes],
        run_report_json: bytes,
        summary_line: str,
        trailers: Mapping[str, str],
        deleted: Sequence[str] | None = None,
    ) -> str:
        """Commit one run's snapshot and return the new commit's sha.

        With `deleted=None`, `files` (node path -> bytes) is the complete set of managed
        files: anything in the previous snapshot but not in `files` disappears. With a
        list, the previous snapshot is updated: `files` added or replaced (a file where
        the snapshot had a directory replaces it, as on the node), `deleted` paths
        removed. Trailers keep the caller's order. The caller holds the node lock.
        """
        message = _message(summary_line, trailers).encode()
        snapshot = {tree_path(node_path): data for node_path, data in files.items()}
        gone = [tree_path(node_path) for node_path in deleted or ()]
        _check_no_file_dir_clash(snapshot)
        self.init()
        self._clear_leftovers()
        parent = self.head()
        if parent is not None and not parent.strip("0"):
            # fast-import would take the null id for "no parent" and start afresh over it
            raise GitFailed([Problem("the history's branch points at no commit",
                                     str(self.path))])
        email = self.node.translate(_NOT_IN_EMAIL).encode()  # as git drops them
        stream = [b"commit %s\nmark :1\ncommitter reconciler <reconciler@%s> %d +0000\n"
                  b"data %d\n%s\n" % (BRANCH.encode(), email, int(time.time()),
                                       len(message), message)]
        if parent:
            stream.append(b"from %s\n" % parent.encode())
        if deleted is None:
            stream.append(b"deleteall\n")
        stream += [b"D %s\n" % _quoted(path) for path in gone]
        for path, data in sorted({**snapshot, RUN_JSON: run_report_json}.items()):
            stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (_quoted(path), len(data), data))
        stream.append(b"get-mark :1\ndone\n")
        # One process writes the blobs, trees and commit as one pack (never loose objects,
        # which cost an fsync each), then moves the branch only if it still is `parent`.
        done = self._repo().run(*_NO_HOOKS, "-c", "fastimport.unpackLimit=0", "fast-import",
                                "--quiet", "--done", "--cat-blob-fd=1", stdin=b"".join(stream))
        if not done.ok:  # git's own words, without the crash report it dumped (removed here)
            self._clear_leftovers()
            raise GitFailed.of(self.path, replace(done, stderr=_CRASH_REPORT.sub("", done.stderr)))
        commit = done.out.strip()
        if self._many_packs():
            self._git("gc", "--auto", "--quiet")
        return commit

    def _many_packs(self) -> bool:
        """git's test for `gc --auto` on a repository that gains a pack per record: more
        packs than gc.autoPackLimit; tested here, not by starting git after every record."""
        return len(list((self.path / "objects" / "pack").glob("*.pack"))) > _GC_AUTO_PACKS

    def log(self, n: int = 20, path: str | None = None) -> list[HistoryEntry]:
        """The newest `n` records, newest first; only those that touched `path` if given."""
        if self.head() is None:
            return []
        limit = ["--", tree_path(path)] if path else []
        out = self._git(
            "log", f"--max-count={n}", "--format=%x1e%H%x1f%ct%x1f%B%x1f",
            "--name-only", "-z", BRANCH, *limit,
        )  # fmt: skip
        entries = []
        for chunk in out.split("\x1e")[1:]:
            sha, stamp, message, names = chunk.split("\x1f", 3)
            changed = [
                f"/{name}"
                for name in names.lstrip("\0\n").split("\0")
                if name not in ("", RUN_JSON)
            ]
            entries.append(
                HistoryEntry(
                    sha=sha,
                    time=datetime.fromtimestamp(int(stamp), UTC),
                    summary=message.split("\n", 1)[0],
                    trailers=_parse_trailers(message),
                    changed=changed,
                )
            )
        return entries

    def read(self, rev: str, node_path: str) -> bytes:
        """A file as recorded in `rev` (node path, or `run.json` for the run report)."""
        relative = RUN_JSON if node_path == RUN_JSON else tree_path(node_path)
        done = self._repo().run("cat-file", "blob", f"{rev}:{relative}")
        if not done.ok:
            raise FileNotFoundError(f"{node_path} not recorded in {rev}: {done.stderr.strip()}")
        return done.stdout


def _check_no_file_dir_clash(entries: Mapping[str, object]) -> None:
    """A path cannot be both a file and a directory in one tree (`etc/a` and `etc/a/b`)."""
    for path in entries:
        parent = posixpath.dirname(path)
        while parent:
            if parent in entries:
                raise ValueError(f"/{parent} is recorded as a file and as a directory of /{path}")
            parent = posixpath.dirname(parent)
