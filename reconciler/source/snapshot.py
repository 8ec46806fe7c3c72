"""Read the config repo at one revision: a git commit's tree, or the working tree.

With a revision, files come straight from the commit (never the working tree), so
`validate --rev HEAD~1` works in a dirty checkout and a run never mixes two commits.
Symlinks are followed only while they stay inside the repo.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from typing import Protocol

from reconciler.errors import ConfigError
from reconciler.git import Git

_MAX_LINK_HOPS = 40
# A config repo is XML and templates: far below these. A commit past them (a few tree
# objects that expand to a million paths, a huge blob) is refused before it is read.
MAX_PATHS = 100_000
MAX_TREE_BYTES = 256 * 1024 * 1024  # all the blobs of a commit together
_MAX_LISTING_BYTES = 32 * 1024 * 1024  # `ls-tree -r -l` of MAX_PATHS paths fits easily


class Snapshot(Protocol):
    """Read-only view of the config repo at one revision; paths are repo-relative."""

    label: str  # "working tree at /path" or the commit sha
    revision: str | None  # the commit sha, or None for a working tree

    def read(self, rel: str) -> bytes: ...
    def is_file(self, rel: str) -> bool: ...
    def is_dir(self, rel: str) -> bool: ...
    def listdir(self, rel: str) -> list[str]: ...


def files_under(snapshot: Snapshot, directory: str) -> Iterator[str]:
    """Every file below `directory` of `snapshot` (repo-relative paths), at any depth."""
    pending = [directory]
    while pending:
        current = pending.pop()
        for name in snapshot.listdir(current):
            rel = f"{current}/{name}"
            if snapshot.is_dir(rel):
                pending.append(rel)
            else:
                yield rel


# What templates render or ship is read from here only: a symlink under it that leads
# elsewhere in the repo (classes/, secrets/, keys/) would publish those files.
_CONFINED = "templates"


def _check_confined(rel: str, resolved: str) -> None:
    """Refuse a path under templates/ whose symlinks lead out of templates/."""
    if rel.split("/", 1)[0] == _CONFINED and resolved.split("/", 1)[0] != _CONFINED:
        raise ConfigError.at(f"{rel} is a symlink to {resolved}, outside {_CONFINED}/", path=rel)


def clean_relpath(rel: str, what: str = "path") -> str:
    """Normalise a repo-relative path, refusing absolute paths, `..` and NUL bytes."""
    if "\0" in rel:
        raise ValueError(f"{what} {rel!r} contains a NUL byte")
    if rel.startswith("/"):
        raise ValueError(f"{what} {rel!r} must be relative to the repo")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what} {rel!r} leaves the repo ('..' is not allowed)")
    return "/".join(parts)


class WorkTree:
    """The files of a checkout as they are on disk (used when no --rev is given)."""

    revision: str | None = None

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.label = f"working tree at {self.root}"
        self._resolved: dict[str, str] = {}
        self._contents: dict[str, bytes] = {}

    def _resolve(self, rel: str) -> str:
        """Host path of `rel`, refusing any symlink that leads outside the repo."""
        found = self._resolved.get(rel)
        if found is not None:
            return found
        clean = clean_relpath(rel)
        path = os.path.realpath(os.path.join(self.root, clean))
        if path != self.root and not path.startswith(self.root + os.sep):
            raise ConfigError.at(f"{rel} is a symlink that leaves the repo", path=rel)
        _check_confined(clean, os.path.relpath(path, self.root))
        self._resolved[rel] = path
        return path

    def read(self, rel: str) -> bytes:
        """The file's bytes, read once per snapshot (a run must not see two versions)."""
        path = self._resolve(rel)
        data = self._contents.get(path)
        if data is None:
            with open(path, "rb") as handle:
                data = handle.read()
            self._contents[path] = data
        return data

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(self._resolve(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self._resolve(rel))

    def listdir(self, rel: str) -> list[str]:
        path = self._resolve(rel)
        return sorted(n for n in os.listdir(path) if n != ".git") if os.path.isdir(path) else []


class CommitTree:
    """The files of one commit (or tree), read from the git object database.

    The tree is listed once (`git ls-tree -r -l`) and every small blob is read in one
    `git cat-file --batch`, so lookups are dictionary hits, a run costs two git
    processes whatever the number of templates, and forked workers share no pipe.
    Larger blobs (a shipped .deb) are read one by one when asked for.
    """

    PRELOAD_LIMIT = 1024 * 1024  # bytes: blobs up to this size are read up front

    def __init__(self, git_dir: str, sha: str, listing: bytes) -> None:
        self.revision: str | None = sha
        self.label = sha
        self._git_dir = git_dir
        self._blobs: dict[str, tuple[int, str]] = {}  # path -> (mode, object id)
        self._dirs: dict[str, set[str]] = {"": set()}
        self._data: dict[str, bytes] = {}
        self._resolved: dict[str, str] = {}
        small: set[str] = set()
        records = [record for record in listing.split(b"\0") if record]
        if len(records) > MAX_PATHS:
            raise ConfigError.at(f"commit {sha} holds {len(records)} paths "
                                 f"(at most {MAX_PATHS}): refused unread")
        total = 0
        for record in records:
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            if kind != "blob":
                continue  # submodules (commits) are not part of the config
            if not size.isdigit():  # git lists a blob it cannot read with size "BAD"
                raise ConfigError.at(f"object {oid} of commit {sha} is missing or damaged "
                                     f"({raw_path.decode('utf-8', 'replace')})")
            total += int(size)
            if total > MAX_TREE_BYTES:
                raise ConfigError.at(f"commit {sha} holds more than {MAX_TREE_BYTES} bytes "
                                     f"(at {raw_path.decode('utf-8', 'replace')}): refused "
                                     "unread")
            path = raw_path.decode("utf-8", "surrogateescape")
            self._blobs[path] = (int(mode, 8), oid)
            if int(size) <= self.PRELOAD_LIMIT:
                small.add(oid)
            parts = path.split("/")
            for depth in range(len(parts)):
                parent = "/".join(parts[:depth])
                self._dirs.setdefault(parent, set()).add(parts[depth])
        self._data = self._batch(sorted(small))

    def _batch(self, oids: list[str]) -> dict[str, bytes]:
        """Every blob of `oids`, read by one `git cat-file --batch`."""
        if not oids:
            return {}
        done = Git(self._git_dir).run("cat-file", "--batch", "--buffer",
                                      stdin="".join(f"{oid}\n" for oid in oids).encode())
        if not done.ok:
            raise ConfigError.at(f"cannot read objects of {self.label}: {done.tail()}")
        out = done.stdout
        data: dict[str, bytes] = {}
        position = 0
        for oid in oids:
            header_end = out.index(b"\n", position)
            header = out[position:header_end].split()
            if len(header) != 3 or header[1] != b"blob":
                raise ConfigError.at(f"object {oid} of {self.label} is missing or not a blob")
            size = int(header[2])
            data[oid] = out[header_end + 1 : header_end + 1 + size]
            position = header_end + 1 + size + 1
        return data

    def _resolve(self, rel: str) -> str:
        """`rel` with in-repo symlinks followed; refuses links that leave the repo, and
        links under templates/ that leave templates/. Worked out once per path (the
        tree does not change; every node of a plan reads the files its class ships)."""
        resolved = self._resolved.get(rel)
        if resolved is None:
            resolved = self._follow(rel)
            _check_confined(clean_relpath(rel), resolved)
            self._resolved[rel] = resolved
        return resolved

    def _follow(self, rel: str) -> str:
        path = clean_relpath(rel)
        for _ in range(_MAX_LINK_HOPS):
            parts = path.split("/") if path else []
            for index in range(len(parts)):
                prefix = "/".join(parts[: index + 1])
                entry = self._blobs.get(prefix)
                if entry is None or entry[0] & 0o170000 != stat.S_IFLNK:
                    continue
                target = self._blob(entry[1]).decode("utf-8", "surrogateescape")
                joined = posixpath.normpath(posixpath.join("/".join(parts[:index]), target))
                if target.startswith("/") or joined == ".." or joined.startswith("../"):
                    raise ConfigError.at(f"{rel} is a symlink that leaves the repo", path=rel)
                path = "/".join(p for p in [joined, *parts[index + 1 :]] if p not in ("", "."))
                break
            else:
                return path
        raise ConfigError.at("too many levels of symlinks", path=rel)

    def _blob(self, oid: str) -> bytes:
        data = self._data.get(oid)
        if data is None:
            data = self._batch([oid])[oid]
            self._data[oid] = data
        return data

    def read(self, rel: str) -> bytes:
        entry = self._blobs.get(self._resolve(rel))
        if entry is None:
            raise FileNotFoundError(f"{rel} not found in commit {self.revision}")
        return self._blob(entry[1])

    def is_file(self, rel: str) -> bool:
        return self._resolve(rel) in self._blobs

    def is_dir(self, rel: str) -> bool:
        return self._resolve(rel) in self._dirs

    def listdir(self, rel: str) -> list[str]:
        return sorted(self._dirs.get(self._resolve(rel), ()))


def open_snapshot(repo_path: str, rev: str | None) -> Snapshot:
    """The working tree of `repo_path`, or the tree of `rev` (a commit or a tree) in it."""
    if rev is None:
        if not os.path.isdir(repo_path):
            raise ConfigError.at("not a directory", path=repo_path)
        return WorkTree(repo_path)
    if not os.path.isdir(repo_path):
        raise ConfigError.at("not a directory", path=repo_path)
    if rev.startswith("-"):
        raise ConfigError.at(f"unknown revision {rev!r}", path=repo_path)
    # One git process answers where the repo is, whether it is bare, where we stand in
    # it, and the commit; a tree id (the staged tree of pre-commit) takes a second try.
    git = Git(repo_path)
    found = git.run("rev-parse", "--absolute-git-dir", "--is-bare-repository",
                    "--show-prefix", f"{rev}^{{commit}}")  # rev cannot start with "-"
    lines = found.out.splitlines()
    if len(lines) < 3:
        raise ConfigError.at("not a git repository", path=repo_path)
    git_dir, bare, prefix = lines[:3]
    if bare != "true" and prefix:
        raise ConfigError.at(f"not the top of a git repository (this is {prefix} in it)",
                             path=repo_path)
    sha = lines[3] if found.ok and len(lines) > 3 else None
    if sha is None:
        tree = git.ok("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{tree}}")
        if tree is None:
            kind = (git.ok("cat-file", "-t", rev) or "").strip()
            message = f"{rev!r} is a {kind}, not a commit" if kind else f"unknown revision {rev!r}"
            raise ConfigError.at(message, path=repo_path)
        sha = tree.strip()
    return _listed(git_dir, sha, rev, repo_path)


def open_commit(git_dir: str, sha: str) -> CommitTree:
    """The tree of commit `sha` (its full id, known to be a commit) in the bare repository
    `git_dir`: what `open_snapshot` reads of it, without asking git where and what first
    (a node's cache, once its commit is chosen)."""
    if sha.startswith("-"):
        raise ConfigError.at(f"unknown revision {sha!r}", path=git_dir)
    return _listed(os.path.abspath(git_dir), sha, sha, git_dir)


def _listed(git_dir: str, sha: str, rev: str, repo_path: str) -> CommitTree:
    listing = Git(git_dir).run("ls-tree", "-r", "-z", "-l", "--full-tree", sha,
                               max_output=_MAX_LISTING_BYTES)
    if len(listing.stdout) > _MAX_LISTING_BYTES:
        raise ConfigError.at(f"commit {sha} holds more paths than a config repo may "
                             f"(at most {MAX_PATHS}): refused unread", path=repo_path)
    if not listing.ok:
        raise ConfigError.at(f"cannot list {rev!r}: {listing.stderr.strip()}", path=repo_path)
    return CommitTree(git_dir, sha, listing.stdout)
