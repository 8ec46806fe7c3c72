"""The node's bare cache of the config repo: fetch it, keep it healthy, resolve commits in it.

A run calls, holding the node lock:

    cache = SourceCache(state.source_cache, remote, mirrors, timeout)
    cache.ensure_healthy(fsck=due)  # stale locks; when due, fsck: corrupt cache -> re-clone
    served = cache.fetch(branch)    # primary, then mirrors in order
    sha = cache.choose(branch=...)  # or commit=pin
    cache.check_forward(last_applied, sha, allow_rewind)
    signer = signatures.verify(cache, policy, sha, last_applied, ...)
    tree = cache.open(sha)          # snapshot.py: files of that commit only

The cache is a bare repository whose `refs/heads/*` mirror the remote's branches,
exactly the layout of `git clone --bare` (no tags). A run fetches only the branch it
follows: one `ls-refs` of that one ref, and a pack only when the tip moved, so a
pushed merge-request branch costs the node nothing and a quiet poll costs the server
one short ref advertisement; fetching every branch (`+refs/heads/*`) is for a pinned
commit the cache does not have yet. Git's own housekeeping (`maintenance --auto`) and
the `fsck` of the whole cache are kept off that path: they run when a fetch failed and
once a period (`check_due`), not on every run. The cache is created with `git init
--bare` plus a fetch rather than a clone, so one bounded fetch does the network part,
and the new repository is built beside the cache and renamed into place, so a killed
run never leaves half a clone.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.agent.urls import check_url
from reconciler.agent.urls import redact as redact
from reconciler.agent.urls import spread as spread
from reconciler.errors import Problem, Refused, RetryLater
from reconciler.git import Done, Git, init_bare
from reconciler.source import stamps
from reconciler.source.snapshot import Snapshot, open_commit
from reconciler.source.stamps import CHECK_PERIOD
from reconciler.source.stamps import CHECKED as CHECKED

_REFSPEC = "+refs/heads/*:refs/heads/*"
# Housekeeping is not the fetch's job: `ensure_healthy` runs it when the cache is checked.
QUIET_FETCH = ("-c", "maintenance.auto=false", "-c", "gc.auto=0")
_LOCK_NAMES = ("index.lock", "shallow.lock", "packed-refs.lock", "HEAD.lock", "config.lock")
# Words git uses when the local object store or refs are damaged.
_CORRUPT_RE = re.compile(
    r"corrupt|missing (blob|tree|commit|object)|bad object|unable to read|"
    r"did not receive expected object|loose object .* is corrupt|not a git repository|"
    r"bad packed object|packfile .* cannot be accessed",
    re.IGNORECASE,
)


class SourceUnavailable(RetryLater):
    """No remote could be fetched: one problem per URL with its error; back off and retry."""


class HistoryRewind(Refused):
    """The chosen commit does not descend from the last applied one (force-push or rollback)."""


class RevisionNotFound(Refused):
    """The configured branch or pinned commit is not in the fetched repository."""


@dataclass(frozen=True)
class FetchResult:
    """Which URL served the fetch, and why the URLs tried before it failed."""

    url: str
    failures: tuple[tuple[str, str], ...] = ()


# What ssh says when the remote is not the host its known_hosts names: not an outage.
HOST_KEY_RE = re.compile(r"host key verification failed|remote host identification has "
                         r"changed|no \S+ host key is known", re.IGNORECASE)


def failure(done: Done) -> str:
    """What went wrong in a git command, fit for a message (passwords hidden); ssh's
    word on a host key is kept even when git's own lines follow it."""
    tail = done.tail()
    found = HOST_KEY_RE.search(done.stderr)
    if found and found.group(0) not in tail:
        line = done.stderr[done.stderr.rfind("\n", 0, found.start()) + 1:].split("\n", 1)[0]
        tail = f"{line.strip()} / {tail}"
    return redact(tail)


class _FetchFailed(Exception):
    def __init__(self, tail: str) -> None:
        super().__init__(tail)
        self.tail = tail


class SourceCache:
    """The bare cache clone of the config repo at `path` (`<state-dir>/source.git`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        remote: str,
        mirrors: Sequence[str] = (),
        timeout: float = 60.0,
        spread_by: str | None = None,
    ) -> None:
        """`spread_by` (a node name): fetch from the URL it picks first (`spread`),
        instead of the remote, then mirrors, in order."""
        self.path = Path(path)
        self.remote = remote
        self.urls = spread(spread_by, remote, mirrors) if spread_by else [remote, *mirrors]
        self.where = redact(remote)  # how messages name the remote
        self.timeout = timeout
        self.git = Git(self.path)
        self._subjects: dict[str, str] = {}  # full sha -> subject, read by another log

    # -- fetching -----------------------------------------------------------------

    def fetch(self, branch: str | None = None) -> FetchResult:
        """Bring the cache up to date from the first URL that answers: only `branch` when
        given (a branch the remote lacks is removed from the cache too), else every branch.

        Creates the cache on first use. When every URL fails and one of the errors
        says the local cache is damaged, or `git fsck` does, the cache is re-cloned once.
        """
        refspec = _REFSPEC if branch is None else f"+refs/heads/{branch}:refs/heads/{branch}"
        failures: list[tuple[str, str]] = []
        for url in self.urls:
            try:
                if self.path.exists():
                    self._fetch_into(self.path, url, refspec)
                else:
                    self._create(self.path, url, refspec)
                return FetchResult(url, tuple(failures))
            except _FetchFailed as err:
                failures.append((url, err.tail))
        if self.path.exists() and (any(_CORRUPT_RE.search(tail) for _, tail in failures)
                                   or self._damage()):
            result = self._reclone()
            return FetchResult(result.url, (*failures, *result.failures))
        raise self._unavailable(failures)

    def _unavailable(self, failures: Sequence[tuple[str, str]]) -> SourceUnavailable:
        return SourceUnavailable(
            [Problem(f"fetch failed: {tail}", redact(url)) for url, tail in failures]
        )

    def _fetch_into(self, path: Path, url: str, refspec: str = _REFSPEC) -> None:
        """Fetch `refspec` from `url`. git asks the remote for those refs only (protocol
        v2 `ls-refs` with a ref prefix) and downloads a pack only when one moved; a
        branch the remote does not have is removed from the cache, as `--prune` does."""
        try:
            check_url(url)
        except ValueError as refused:
            raise _FetchFailed(str(refused)) from None
        done = Git(path).run(*QUIET_FETCH, "fetch", "--prune", "--no-tags",
                             "--no-write-fetch-head", "--quiet", "--", url, refspec,
                             timeout=self.timeout, network=True)
        if done.ok:
            return
        source, _, local = refspec.lstrip("+").partition(":")
        if "*" not in source and "couldn't find remote ref" in done.stderr:
            Git(path).run("update-ref", "-d", local)
            return
        raise _FetchFailed(failure(done))

    def _create(self, target: Path, url: str, refspec: str = _REFSPEC) -> None:
        """Build a new cache beside `target` from `url`, then rename it into place."""
        building = target.with_name(f"{target.name}.new-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # No git process may outlive the run that started it (see ensure_healthy).
            done = init_bare(building, {"gc.autoDetach": "false"})
            if not done.ok:
                raise _FetchFailed(failure(done))
            self._fetch_into(building, url, refspec)
            os.rename(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    # -- health ---------------------------------------------------------------------

    def ensure_healthy(self, min_lock_age: float | None = None, fsck: bool = True) -> list[str]:
        """Remove stale locks and, with `fsck`, replace a damaged cache; return what was
        repaired.

        The caller holds the node lock, so no other reconciler process uses the cache;
        a git lock file older than `min_lock_age` (default: the fetch timeout) was left
        by a killed run. A cache that `git fsck --connectivity-only` rejects is
        re-cloned beside it, checked, and swapped in; one that passes is tidied by git's
        `maintenance --auto` and stamped (see `check_due`). Raises `SourceUnavailable`
        when a needed re-clone cannot reach any remote.
        """
        repairs = self._remove_leftovers()
        if not self.path.exists():
            return repairs
        max_age = self.timeout if min_lock_age is None else min_lock_age
        now = time.time()
        for lock in self._lock_files():
            try:
                age = now - lock.stat().st_mtime
                if age > max_age:
                    lock.unlink()
                    repairs.append(f"removed stale lock {lock} ({age:.0f} s old)")
            except FileNotFoundError:
                continue
        if not fsck:
            return repairs
        problem = self._damage()
        if problem:
            result = self._reclone()
            repairs.append(f"re-cloned the cache from {result.url}: {problem}")
        else:
            self.git.run("maintenance", "run", "--auto", "--quiet")
        stamps.note(self.path, CHECKED)
        return repairs

    def check_due(self, node: str, now: float, period: float = CHECK_PERIOD) -> bool:
        """Whether the cache is due for its `fsck` and housekeeping: not checked yet in
        the current period. Periods are anchored to the wall clock at this node's own
        offset, so a fleet spreads its checks over the period rather than all at once."""
        return stamps.due(self.path, CHECKED, node, period, now)

    def _lock_files(self) -> list[Path]:
        found = [self.path / name for name in _LOCK_NAMES if (self.path / name).exists()]
        for sub in ("refs", "logs"):
            found.extend(sorted((self.path / sub).rglob("*.lock")))
        return found

    def _damage(self) -> str | None:
        """Why the cache is unusable, or None when fsck finds it connected and whole."""
        done = self.git.run("fsck", "--connectivity-only", "--no-progress")
        return None if done.ok else f"git fsck: {failure(done)}"

    def _remove_leftovers(self) -> list[str]:
        removed = []
        for path in sorted(self.path.parent.glob(f"{self.path.name}.*-*")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"removed leftover {path} of an interrupted run")
        return removed

    def _reclone(self) -> FetchResult:
        """Clone afresh beside the cache, fsck it, and swap it in (old aside, new in, old gone)."""
        failures: list[tuple[str, str]] = []
        fresh = self.path.with_name(f"{self.path.name}.fresh-{os.getpid()}")
        for url in self.urls:
            try:
                self._create(fresh, url)
            except _FetchFailed as err:
                failures.append((url, err.tail))
                continue
            done = Git(fresh).run("fsck", "--no-progress")
            if not done.ok:
                shutil.rmtree(fresh, ignore_errors=True)
                failures.append((url, f"fresh clone fails fsck: {failure(done)}"))
                continue
            aside = self.path.with_name(f"{self.path.name}.old-{os.getpid()}")
            if self.path.exists():
                os.rename(self.path, aside)
            os.rename(fresh, self.path)
            shutil.rmtree(aside, ignore_errors=True)
            return FetchResult(url, tuple(failures))
        raise self._unavailable(failures)

    # -- choosing and checking a commit ---------------------------------------------

    def resolve(self, rev: str) -> str | None:
        """The full sha of the commit `rev` names in the cache, or None."""
        if rev.startswith("-") or not self.path.exists():
            return None
        out = self.git.ok(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
        return out.strip() or None if out else None

    def choose(self, branch: str | None = None, commit: str | None = None) -> str:
        """The full sha of the branch tip, or of the pinned commit (which must be fetched)."""
        if (branch is None) == (commit is None):
            raise ValueError("choose() needs exactly one of branch or commit")
        if branch is not None:
            sha = self.resolve(f"refs/heads/{branch}")
            if sha is None:
                raise RevisionNotFound(
                    [Problem(f"branch {branch!r} does not exist in the config repo", self.where)]
                )
            return sha
        assert commit is not None
        sha = self.resolve(commit)
        if sha is None or not sha.startswith(commit.lower()):
            raise RevisionNotFound(
                [Problem(f"pinned commit {commit} is not in the fetched repository", self.where)]
            )
        return sha

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether `older` is `newer` or one of its ancestors."""
        return self.git.run("merge-base", "--is-ancestor", older, newer).ok

    def check_forward(
        self, last_applied: str | None, new: str, allow_rewind: bool = False
    ) -> str | None:
        """Refuse a commit that does not descend from the last applied one.

        Returns None when the history moved forward (or this is the first run), or the
        rewind message when `allow_rewind` lets a rewind through so the caller can
        record it. Raises `HistoryRewind` otherwise.
        """
        if last_applied is None:
            return None
        old = self.resolve(last_applied)
        if old is not None and self.is_ancestor(old, new):
            return None
        message = f"force-push or rollback: {new} is not a descendant of {last_applied}"
        if old is None:
            message += f" ({last_applied} is no longer in the repository)"
        elif self.is_ancestor(new, old):
            message += " (it is an older commit: the remote went back)"
        if allow_rewind:
            return message
        raise HistoryRewind([Problem(message, self.where)])

    def subject(self, commit: str | None) -> str | None:
        """The first line of a commit's message (None when unknown to the cache)."""
        if commit is None or commit.startswith("-") or not self.path.exists():
            return None
        out = self._subjects.get(commit)
        if out is None:
            out = self.git.ok("log", "-1", "--format=%s", "--end-of-options", commit)
        return out.strip() or None if out else None

    def learn_subject(self, commit: str, subject: str) -> None:
        """Remember the subject of the commit whose full sha is `commit`, read by another
        `git log` of the run (the signature check's): `subject` then starts no git of
        its own. A commit's subject never changes, so the memory is never stale."""
        self._subjects[commit] = subject

    def open(self, commit: str) -> Snapshot:
        """The files of `commit` (a full sha `choose` returned), read from the cache."""
        return open_commit(str(self.path), commit)
