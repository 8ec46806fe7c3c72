"""Read the config repo at one revision: a git commit's tree, or the working tree.

With a revision, files come straight from the commit (never the working tree), so
`validate --rev HEAD~1` works in a dirty checkout and a run never mixes two commits.
Symlinks are followed only while they stay inside the repo.
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import ConfigError

if TYPE_CHECKING:
    import git

_MAX_LINK_HOPS = 40


class Snapshot(Protocol):
    """Read-only view of the config repo at one revision; paths are repo-relative."""

    label: str  # "working tree at /path" or the commit sha
    revision: str | None  # the commit sha, or None for a working tree

    def read(self, rel: str) -> bytes: ...
    def is_file(self, rel: str) -> bool: ...
    def is_dir(self, rel: str) -> bool: ...
    def listdir(self, rel: str) -> list[str]: ...


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

    def _resolve(self, rel: str) -> str:
        """Host path of `rel`, refusing any symlink that leads outside the repo."""
        path = os.path.realpath(os.path.join(self.root, clean_relpath(rel)))
        if path != self.root and not path.startswith(self.root + os.sep):
            raise ConfigError.at(f"{rel} is a symlink that leaves the repo", path=rel)
        return path

    def read(self, rel: str) -> bytes:
        with open(self._resolve(rel), "rb") as handle:
            return handle.read()

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(self._resolve(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self._resolve(rel))

    def listdir(self, rel: str) -> list[str]:
        path = self._resolve(rel)
        return sorted(n for n in os.listdir(path) if n != ".git") if os.path.isdir(path) else []


class CommitTree:
    """The files of one commit, read from the git object database."""

    def __init__(self, repo: git.Repo, sha: str) -> None:
        self._repo = repo
        self.revision = sha
        self.label = sha
        self._tree = repo.commit(sha).tree
        self._cache: dict[str, object] = {}

    def _entry(self, rel: str) -> object | None:
        """The tree or blob at `rel`, following in-repo symlinks; None if missing."""
        path = clean_relpath(rel)
        hops = 0
        while True:
            obj: object = self._tree
            parts = path.split("/") if path else []
            for index, part in enumerate(parts):
                try:
                    obj = obj[part]  # type: ignore[index]
                except KeyError:
                    return None
                if getattr(obj, "mode", 0) & 0o170000 == stat.S_IFLNK:
                    hops += 1
                    if hops > _MAX_LINK_HOPS:
                        raise ConfigError.at("too many levels of symlinks", path=rel)
                    target = obj.data_stream.read().decode()  # type: ignore[attr-defined]
                    base = "/".join(parts[:index])
                    joined = posixpath.normpath(posixpath.join(base, target))
                    if target.startswith("/") or joined == ".." or joined.startswith("../"):
                        raise ConfigError.at(f"{rel} is a symlink that leaves the repo", path=rel)
                    path = "/".join(p for p in [joined, *parts[index + 1 :]] if p not in ("", "."))
                    break
            else:
                return obj

    def read(self, rel: str) -> bytes:
        entry = self._entry(rel)
        if entry is None or getattr(entry, "type", "") != "blob":
            raise FileNotFoundError(f"{rel} not found in commit {self.revision}")
        data: bytes = entry.data_stream.read()  # type: ignore[attr-defined]
        return data

    def is_file(self, rel: str) -> bool:
        entry = self._entry(rel)
        return entry is not None and getattr(entry, "type", "") == "blob"

    def is_dir(self, rel: str) -> bool:
        entry = self._entry(rel)
        return entry is not None and getattr(entry, "type", "") == "tree"

    def listdir(self, rel: str) -> list[str]:
        entry = self._entry(rel)
        if entry is None or getattr(entry, "type", "") != "tree":
            return []
        return sorted(item.name for item in entry)  # type: ignore[attr-defined]


def open_snapshot(repo_path: str, rev: str | None) -> Snapshot:
    """The working tree of `repo_path`, or the tree of commit `rev` in it."""
    if rev is None:
        if not os.path.isdir(repo_path):
            raise ConfigError.at("not a directory", path=repo_path)
        return WorkTree(repo_path)
    import git  # imported lazily: GitPython is slow to import and not needed without --rev

    try:
        # GitDB reads objects in-process: no long-lived `git cat-file` to share across forks.
        repo = git.Repo(repo_path, search_parent_directories=False, odbt=git.GitDB)
        sha = repo.rev_parse(rev).hexsha
        repo.commit(sha)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ConfigError.at("not a git repository", path=repo_path) from None
    except (git.BadName, ValueError) as exc:
        raise ConfigError.at(f"unknown revision {rev!r} ({exc})", path=repo_path) from None
    return CommitTree(repo, sha)
