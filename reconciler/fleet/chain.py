"""A node's report history: signed commits on `refs/reports/<node>` of a local repository.

Each report is one commit whose tree holds `report.json` only and whose parent is the
previous report, signed with the node's SSH key (`git commit-tree -S`, gpg.format=ssh).
The node builds its chain in `<state-dir>/reports/repo.git` and pushes the ref from
there, so a report that could not be pushed stays in the chain and goes out with the
next push.

The history is bounded: when the chain holds MAX_REPORTS commits, the newest KEEP - 1
of them are committed again (same trees and messages, re-signed) as a new chain and
the new report goes on top of it, so a ref holds between KEEP and MAX_REPORTS
reports. The ref then moves by a forced update; the server accepts it because every
new commit is signed by the node and the tip is newer than the report it replaces.
Older reports become unreachable and git's garbage collection drops them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from reconciler import git
from reconciler.git import Done, Git

MAX_REPORTS = 100
KEEP = 50
REPORT_FILE = "report.json"
REF_PREFIX = "refs/reports/"
MAX_REPORT_BYTES = 1024 * 1024  # the most a report may weigh (the server refuses more)


def init_bare(path: Path) -> None:
    """Create a bare repository at `path` if there is none (built beside it, renamed in,
    so a killed process never leaves half a repository)."""
    if (path / "HEAD").is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f"{path.name}.new-{os.getpid()}")
    done = git.init_bare(building, {"gc.autoDetach": "false"})  # no git outlives its caller
    if not done.ok:
        raise OSError(f"git init {building}: {done.tail()}")
    try:
        os.rename(building, path)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not (path / "HEAD").is_file():
            raise


class ChainError(Exception):
    """A git command on the local report repository failed; the report stays queued."""


def _check(done: Done, what: str) -> str:
    if not done.ok:
        raise ChainError(f"{what}: {done.tail()}")
    return done.out.strip()


class Chain:
    """`refs/reports/<node>` in the local repository at `path`, signed with `key`."""

    def __init__(self, path: Path, node: str, key: Path, max_reports: int = MAX_REPORTS,
                 keep: int = KEEP) -> None:
        self.path = path
        self.node = node
        self.ref = REF_PREFIX + node
        self.key = key
        self.max_reports = max_reports
        self.keep = keep
        ident = f"reconciler@{node}"
        self._env = {"GIT_AUTHOR_NAME": "reconciler", "GIT_AUTHOR_EMAIL": ident,
                     "GIT_COMMITTER_NAME": "reconciler", "GIT_COMMITTER_EMAIL": ident}

    def _git(self, *args: str, stdin: bytes | None = None, signed: bool = False) -> Done:
        config = ("-c", "gpg.format=ssh", "-c", f"user.signingKey={self.key}") if signed else ()
        return Git(self.path).run(*config, *args, stdin=stdin, env=self._env)

    def tip(self) -> str | None:
        """The newest report's commit: read from the ref's file as git keeps it (the
        chain is asked before every append and push), from git when that is not a
        plain ref."""
        try:
            return git.read_ref(self.path, self.ref)
        except (ValueError, OSError):
            done = self._git("rev-parse", "--verify", "--quiet", self.ref + "^{commit}")
            return done.out.strip() or None if done.ok else None

    def tip_report(self) -> bytes | None:
        """The `report.json` of the newest report, or None when there is none (a chain
        not begun yet is known from its ref's file: no git process for a first report)."""
        if self.tip() is None:
            return None
        done = self._git("cat-file", "blob", f"{self.ref}:{REPORT_FILE}")
        return done.stdout if done.ok else None

    def append(self, report: bytes, message: str) -> str:
        """Commit `report` on top of the chain (rotating it when full); the new tip."""
        init_bare(self.path)
        blob = _check(self._git("hash-object", "-w", "--stdin", stdin=report), "hash-object")
        tree = _check(self._git("mktree", stdin=f"100644 blob {blob}\t{REPORT_FILE}\n".encode()),
                      "mktree")
        old = self.tip()
        parent = old
        if old is not None and self._length(old) >= self.max_reports:
            parent = self._rebuild(old)
        new = self._commit(tree, message, parent)
        _check(self._git("update-ref", self.ref, new, old or ""), "update-ref")
        return new

    def _commit(self, tree: str, message: str, parent: str | None) -> str:
        args = ["commit-tree", "-S", tree, *(["-p", parent] if parent else [])]
        return _check(self._git(*args, stdin=message.encode(), signed=True),
                      "signing the report commit")

    def _length(self, tip: str) -> int:
        return int(_check(self._git("rev-list", "--count", tip), "rev-list") or 0)

    def _rebuild(self, tip: str) -> str:
        """The newest `keep` - 1 reports as a new chain (oldest first); its tip."""
        listing = _check(self._git("log", f"-{self.keep - 1}", "--format=%T%x00%B%x1e", tip),
                         "reading the chain")
        entries = [record.strip("\n").split("\x00", 1) for record in listing.split("\x1e")
                   if record.strip("\n")]
        parent: str | None = None
        for tree, message in reversed(entries):
            parent = self._commit(tree, message.strip("\n") + "\n", parent)
        assert parent is not None
        return parent

    def history(self) -> Sequence[str]:
        """Commit ids of the chain, newest first."""
        done = self._git("rev-list", self.ref)
        return done.out.split() if done.ok else []
