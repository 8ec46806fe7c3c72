"""The *record* stage: the node's own audit trail, a git repository of what each run did.

`<state_dir>/history` is a bare repository (no working tree to corrupt). Each record
is one commit on `main` whose tree is a snapshot of the managed files at their node
paths without the leading slash (`etc/nginx/nginx.conf`) plus `run.json`, and whose
message is a one-line summary followed by trailers (`Config-Commit:`, `Node:`, ...).

Commits are built with plumbing only: blobs with `git hash-object -w` (or, many at once,
one pack through `git index-pack`), the tree from
a throwaway index file, `git commit-tree`, then `git update-ref` with the expected old
value. Objects are written before the ref moves and every git write is atomic, so a
run killed at any moment leaves a repository `git fsck --strict` finds clean.

History stores exactly the bytes it is given. Secrets must be passed as their sha256
text (or left out) by the caller: this module never sees, and so never stores, what
it is not given.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import socket
import struct
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
_TEMP_INDEX_PREFIX = "reconciler-index-"
_GC_AUTO_IN_17 = -(-6700 // 256)  # git's default gc.auto, as git counts it in objects/17
_GC_AUTO_PACKS = 50  # git's default gc.autoPackLimit
_PACK_FROM = 64  # this many new blobs or more are written as one pack
_PACKED_BLOB = 3  # the object type of a blob in a pack


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


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class History:
    """The history repository at `path`; the committer is `reconciler <reconciler@NODE>`."""

    def __init__(self, path: str | os.PathLike[str], node: str | None = None) -> None:
        self.path = Path(path)
        self.node = node or socket.getfqdn()

    def _git(
        self, *args: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None
    ) -> str:
        """Stdout of a git command on the repository; `GitFailed` when it fails. Hooks are
        off: the repository is reconciler's own, and nothing planted in it may run."""
        return self._repo().out("-c", "core.hooksPath=/dev/null", *args, env=env, stdin=stdin)

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
        """Remove lock and temp index files of a killed run (the caller holds the node lock)."""
        for name in _LOCKS:
            (self.path / name).unlink(missing_ok=True)
        for temp in self.path.glob(f"{_TEMP_INDEX_PREFIX}*"):
            temp.unlink(missing_ok=True)
        for staging in self.path.glob(".blobs-*"):
            shutil.rmtree(staging, ignore_errors=True)
        for temp in self.path.glob("objects/pack/tmp_*"):  # a pack git did not finish
            temp.unlink(missing_ok=True)

    def _tree_entries(self, commit: str) -> dict[str, str]:
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        entries = {}
        for record in out.split("\0"):
            if record:
                meta, _, path = record.partition("\t")
                if path != RUN_JSON:
                    entries[path] = meta.split(" ")[2]
        return entries

    def _store_blobs(self, blobs: Mapping[str, bytes]) -> None:
        """Write the blobs the object database does not have yet (keyed by object id):
        many at once as one pack (a first run can bring a thousand files: one file and
        one fsync, where loose objects cost an fsync each), a few as loose objects."""
        missing = self._missing(list(blobs))
        if not missing:
            return
        if len(missing) >= _PACK_FROM:
            self._git("index-pack", "--stdin", stdin=_pack([blobs[oid] for oid in missing]))
            still = set(self._missing(missing))
            written = [oid for oid in missing if oid not in still]
        else:
            # One git process for all new blobs.
            with tempfile.TemporaryDirectory(prefix=".blobs-", dir=self.path) as staging:
                paths = []
                for object_id in missing:
                    path = os.path.join(staging, object_id)
                    with open(path, "wb") as handle:
                        handle.write(blobs[object_id])
                    paths.append(path)
                written = self._git("hash-object", "-w", "--no-filters", "--stdin-paths",
                                    stdin="".join(f"{p}\n" for p in paths).encode()).split()
        if written != missing:
            raise GitFailed([Problem("git stored other blobs than the ones computed",
                                     str(self.path))])

    def _missing(self, object_ids: Sequence[str]) -> list[str]:
        """The object ids the repository lacks. A loose object is a file of its own; git
        is asked about the others only when it keeps packs (or borrows objects): asked
        about an object it lacks, it looks through its packs again each time."""
        objects = self.path / "objects"
        unseen = [oid for oid in object_ids if not os.path.isfile(objects / oid[:2] / oid[2:])]
        if not unseen or not (any(objects.glob("pack/*.pack"))
                              or (objects / "info" / "alternates").exists()):
            return unseen
        out = self._git("cat-file", "--batch-check",
                        stdin="".join(f"{oid}\n" for oid in unseen).encode())
        return [line.split(" ")[0] for line in out.splitlines() if line.endswith(" missing")]

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
        list, the previous snapshot is updated: `files` added or replaced, `deleted`
        paths removed. Trailers keep the caller's order. The caller holds the node lock.
        """
        message = _message(summary_line, trailers)
        snapshot = {tree_path(node_path): data for node_path, data in files.items()}
        gone = [tree_path(node_path) for node_path in deleted or ()]
        _check_no_file_dir_clash(snapshot)
        self.init()
        self._clear_leftovers()
        parent = self.head()
        entries = self._tree_entries(parent) if parent and deleted is not None else {}
        for path in gone:
            entries.pop(path, None)
        blobs = {_blob_id(run_report_json): run_report_json}
        for path, data in snapshot.items():
            entries[path] = _blob_id(data)
            blobs[entries[path]] = data
        _check_no_file_dir_clash(entries)
        entries[RUN_JSON] = _blob_id(run_report_json)
        self._store_blobs(blobs)

        index = self.path / f"{_TEMP_INDEX_PREFIX}{os.getpid()}"
        index_env = {"GIT_INDEX_FILE": str(index)}
        try:
            listing = "".join(f"100644 {oid}\t{path}\0" for path, oid in sorted(entries.items()))
            self._git("update-index", "-z", "--index-info", env=index_env, stdin=listing.encode())
            tree = self._git("write-tree", env=index_env).strip()
        finally:
            index.unlink(missing_ok=True)

        identity = {
            "GIT_AUTHOR_NAME": "reconciler",
            "GIT_AUTHOR_EMAIL": f"reconciler@{self.node}",
            "GIT_COMMITTER_NAME": "reconciler",
            "GIT_COMMITTER_EMAIL": f"reconciler@{self.node}",
        }
        parents = ["-p", parent] if parent else []
        commit = self._git(
            "commit-tree", "--no-gpg-sign", tree, *parents, "-F", "-",
            env=identity, stdin=message.encode(),
        ).strip()  # fmt: skip
        self._git(
            "update-ref", "-m", f"record: {summary_line.strip()}", BRANCH, commit, parent or ""
        )
        if self._many_loose_objects() or self._many_packs():
            self._git("gc", "--auto", "--quiet")
        return commit

    def _many_loose_objects(self) -> bool:
        """git's own test for `gc --auto` (more than gc.auto / 256 loose objects in
        objects/17), without starting git after every record to make it."""
        try:
            names = os.listdir(self.path / "objects" / "17")
        except FileNotFoundError:
            return False
        return sum(1 for name in names if len(name) == 38) > _GC_AUTO_IN_17

    def _many_packs(self) -> bool:
        """git's other test for `gc --auto`: more packs than gc.autoPackLimit (a record
        of many new files adds one)."""
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


def _pack(blobs: Sequence[bytes]) -> bytes:
    """A git pack (version 2, no deltas) of `blobs`, for `git index-pack --stdin`."""
    parts = [b"PACK", struct.pack(">II", 2, len(blobs))]
    for data in blobs:
        size = len(data)
        byte = (_PACKED_BLOB << 4) | (size & 0x0F)
        size >>= 4
        header = bytearray()
        while size:
            header.append(byte | 0x80)
            byte, size = size & 0x7F, size >> 7
        header.append(byte)
        parts += [bytes(header), zlib.compress(data, 1)]
    body = b"".join(parts)
    return body + hashlib.sha1(body, usedforsecurity=False).digest()


def _check_no_file_dir_clash(entries: Mapping[str, object]) -> None:
    """A path cannot be both a file and a directory in one tree (`etc/a` and `etc/a/b`)."""
    for path in entries:
        parent = posixpath.dirname(path)
        while parent:
            if parent in entries:
                raise ValueError(f"/{parent} is recorded as a file and as a directory of /{path}")
            parent = posixpath.dirname(parent)
