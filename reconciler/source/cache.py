"""The *source* stage: fetch the config repo, pick and verify a commit, read its tree.

A run calls, holding the node lock:

    cache = SourceCache(state_dir, remote, mirrors, timeout)
    cache.ensure_healthy()          # stale locks, corrupt cache -> re-clone
    served = cache.fetch()          # primary, then mirrors in order
    sha = cache.choose(branch=...)  # or commit=pin
    cache.check_forward(last_applied, sha, allow_rewind)
    signer = cache.verify(policy, sha, last_applied, allowed_signers, gpg_home)
    tree = open_snapshot(cache.path, sha)   # snapshot.py: files of that commit only

The cache is a bare repository whose `refs/heads/*` mirror the remote's branches
(refspec `+refs/heads/*:refs/heads/*`, pruned, no tags), exactly the layout of
`git clone --bare`. It is created with `git init --bare` plus a fetch rather than
`Repo.clone_from`, because GitPython cannot bound a clone with `kill_after_timeout`
and because the new repository is built beside the cache and renamed into place, so
a killed run never leaves half a clone at `source.git`.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

import git
from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.agent.settings import check_url
from reconciler.atomicfile import write_atomic
from reconciler.errors import Problem, Reaction, ReconcilerError
from reconciler.statedir import SOURCE_CACHE

SignaturePolicy = Literal["none", "head", "range"]


_REFSPEC = "+refs/heads/*:refs/heads/*"
_TAIL_LINES = 3
_LOCK_NAMES = ("index.lock", "shallow.lock", "packed-refs.lock", "HEAD.lock", "config.lock")
# Words git uses when the local object store or refs are damaged.
_CORRUPT_RE = re.compile(
    r"corrupt|missing (blob|tree|commit|object)|bad object|unable to read|"
    r"did not receive expected object|loose object .* is corrupt|not a git repository|"
    r"bad packed object|packfile .* cannot be accessed",
    re.IGNORECASE,
)


@dataclass
class SourceUnavailable(ReconcilerError):
    """No remote could be fetched: one problem per URL with its error; back off and retry."""

    reaction: Reaction = Reaction.RETRY


class HistoryRewind(ReconcilerError):
    """The chosen commit does not descend from the last applied one (force-push or rollback)."""


class SignatureRefused(ReconcilerError):
    """A commit failed the signature policy; the run is refused, last good is kept."""


class RevisionNotFound(ReconcilerError):
    """The configured branch or pinned commit is not in the fetched repository."""


@dataclass(frozen=True)
class FetchResult:
    """Which URL served the fetch, and why the URLs tried before it failed."""

    url: str
    failures: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SignatureInfo:
    """Who signed a commit that verified: key fingerprint and signer identity."""

    commit: str
    kind: Literal["ssh", "openpgp"]
    key: str  # OpenPGP fingerprint, or SSH "SHA256:..." key fingerprint
    signer: str  # OpenPGP user id, or the SSH principal from the allowed-signers file
    status: str  # git's %G? letter: G, or U for an OpenPGP key of a dedicated keyring

    def __str__(self) -> str:
        return f"{self.signer} {self.key}" if self.signer else self.key


_PASSWORD_RE = re.compile(r"(://[^/@:\s]+):[^/@\s]+@")


def redact(text: str) -> str:
    """Hide the password of `scheme://user:password@host` URLs in messages."""
    return _PASSWORD_RE.sub(r"\1:***@", text)


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return redact(" / ".join(lines[-_TAIL_LINES:])) or "no error output"


class _Git:
    """Runs git commands in one repository through GitPython, returning clean stderr."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cmd = git.Git(str(path))

    def run(
        self,
        *args: str,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str, str]:
        status, out, err = self._cmd.execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout,
            env=dict(env or {}),
        )
        return int(status), str(out), str(err)

    def ok(self, *args: str) -> str | None:
        """Stdout of a command that may fail for an expected reason (None on failure)."""
        status, out, _ = self.run(*args)
        return out if status == 0 else None


# Network operations never wait for a person: no credential or passphrase prompts.
_NETWORK_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}


class SourceCache:
    """The bare cache clone of the config repo under `<state_dir>/source.git`."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        remote: str,
        mirrors: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / SOURCE_CACHE
        self.remote = remote
        self.urls = [remote, *mirrors]
        self._where = redact(remote)  # how messages name the remote
        self.timeout = timeout
        self._git = _Git(self.path)

    # -- fetching -----------------------------------------------------------------

    def fetch(self) -> FetchResult:
        """Bring the cache up to date from the first URL that answers.

        Creates the cache on first use. When every URL fails and one of the errors
        says the local cache is damaged, the cache is re-cloned once.
        """
        failures: list[tuple[str, str]] = []
        for url in self.urls:
            try:
                if self.path.exists():
                    self._fetch_into(self.path, url)
                else:
                    self._create(self.path, url)
                return FetchResult(url, tuple(failures))
            except _FetchFailed as err:
                failures.append((url, err.tail))
        if self.path.exists() and any(_CORRUPT_RE.search(tail) for _, tail in failures):
            result = self._reclone()
            return FetchResult(result.url, (*failures, *result.failures))
        raise self._unavailable(failures)

    def _unavailable(self, failures: Sequence[tuple[str, str]]) -> SourceUnavailable:
        return SourceUnavailable(
            [Problem(f"fetch failed: {tail}", redact(url)) for url, tail in failures]
        )

    def _fetch_into(self, path: Path, url: str) -> None:
        try:
            check_url(url)
        except ValueError as refused:
            raise _FetchFailed(str(refused)) from None
        status, _, err = _Git(path).run(
            "fetch", "--prune", "--no-tags", "--quiet", "--", url, _REFSPEC,
            timeout=self.timeout, env=_NETWORK_ENV,
        )  # fmt: skip
        if status != 0:
            raise _FetchFailed(_tail(err))

    def _create(self, target: Path, url: str) -> None:
        """Build a new cache beside `target` from `url`, then rename it into place."""
        building = target.with_name(f"{target.name}.new-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            status, _, err = _Git(self.state_dir).run(
                "init", "--quiet", "--bare", "--initial-branch=main", str(building)
            )
            if status != 0:
                raise _FetchFailed(_tail(err))
            # No git process may outlive the run that started it (see ensure_healthy).
            _Git(building).run("config", "gc.autoDetach", "false")
            self._fetch_into(building, url)
            os.rename(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    # -- health ---------------------------------------------------------------------

    def ensure_healthy(self, min_lock_age: float | None = None) -> list[str]:
        """Remove stale locks and replace a damaged cache; return what was repaired.

        The caller holds the node lock, so no other reconciler process uses the cache;
        a git lock file older than `min_lock_age` (default: the fetch timeout) was left
        by a killed run. A cache that `git fsck --connectivity-only` rejects is
        re-cloned beside it, checked, and swapped in. Raises `SourceUnavailable` when
        a needed re-clone cannot reach any remote.
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
        problem = self._damage()
        if problem:
            result = self._reclone()
            repairs.append(f"re-cloned the cache from {result.url}: {problem}")
        return repairs

    def _lock_files(self) -> list[Path]:
        found = [self.path / name for name in _LOCK_NAMES if (self.path / name).exists()]
        for sub in ("refs", "logs"):
            found.extend(sorted((self.path / sub).rglob("*.lock")))
        return found

    def _damage(self) -> str | None:
        """Why the cache is unusable, or None when fsck finds it connected and whole."""
        status, out, err = self._git.run("fsck", "--connectivity-only", "--no-progress")
        if status != 0:
            return f"git fsck: {_tail(err or out)}"
        return None

    def _remove_leftovers(self) -> list[str]:
        removed = []
        for path in sorted(self.state_dir.glob(f"{SOURCE_CACHE}.*-*")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"removed leftover {path} of an interrupted run")
        return removed

    def _reclone(self) -> FetchResult:
        """Clone afresh beside the cache, fsck it, and swap it in (old aside, new in, old gone)."""
        failures: list[tuple[str, str]] = []
        fresh = self.path.with_name(f"{SOURCE_CACHE}.fresh-{os.getpid()}")
        for url in self.urls:
            try:
                self._create(fresh, url)
            except _FetchFailed as err:
                failures.append((url, err.tail))
                continue
            status, out, err_text = _Git(fresh).run("fsck", "--no-progress")
            if status != 0:
                shutil.rmtree(fresh, ignore_errors=True)
                failures.append((url, f"fresh clone fails fsck: {_tail(err_text or out)}"))
                continue
            aside = self.path.with_name(f"{SOURCE_CACHE}.old-{os.getpid()}")
            if self.path.exists():
                os.rename(self.path, aside)
            os.rename(fresh, self.path)
            shutil.rmtree(aside, ignore_errors=True)
            return FetchResult(url, tuple(failures))
        raise self._unavailable(failures)

    # -- choosing and checking a commit ---------------------------------------------

    def _resolve(self, rev: str) -> str | None:
        out = self._git.ok(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
        return out.strip() if out else None

    def choose(self, branch: str | None = None, commit: str | None = None) -> str:
        """The full sha of the branch tip, or of the pinned commit (which must be fetched)."""
        if (branch is None) == (commit is None):
            raise ValueError("choose() needs exactly one of branch or commit")
        if branch is not None:
            sha = self._resolve(f"refs/heads/{branch}")
            if sha is None:
                raise RevisionNotFound(
                    [Problem(f"branch {branch!r} does not exist in the config repo", self._where)]
                )
            return sha
        assert commit is not None
        sha = self._resolve(commit)
        if sha is None or not sha.startswith(commit.lower()):
            raise RevisionNotFound(
                [Problem(f"pinned commit {commit} is not in the fetched repository", self._where)]
            )
        return sha

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether `older` is `newer` or one of its ancestors."""
        status, _, _ = self._git.run("merge-base", "--is-ancestor", older, newer)
        return status == 0

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
        old = self._resolve(last_applied)
        if old is not None and self.is_ancestor(old, new):
            return None
        message = f"force-push or rollback: {new} is not a descendant of {last_applied}"
        if old is None:
            message += f" ({last_applied} is no longer in the repository)"
        elif self.is_ancestor(new, old):
            message += " (it is an older commit: the remote went back)"
        if allow_rewind:
            return message
        raise HistoryRewind([Problem(message, self._where)])

    def verify(
        self,
        policy: SignaturePolicy,
        commit: str,
        last_applied: str | None,
        allowed_signers: str | os.PathLike[str] | None,
        gpg_home: str | os.PathLike[str] | None,
    ) -> SignatureInfo | None:
        """Check signatures with git's own verification and return who signed the tip.

        `head` checks the tip; `range` checks every commit in `last_applied..commit`
        and the tip (just the tip on a first run). Status `G` passes. `U` (good
        signature, validity unknown) passes only for an OpenPGP key when `gpg_home`
        names a dedicated keyring: putting a key there is the trust decision. For SSH,
        `U` means the key is not in the allowed-signers file and fails. With policy
        `none` nothing is refused and the tip's signer is returned when it verifies.
        """
        if policy == "range" and last_applied is not None:
            if self._resolve(last_applied) is None:
                raise SignatureRefused(
                    [
                        Problem(
                            f"cannot verify the range {last_applied}..{commit}: "
                            f"{last_applied} is no longer in the repository",
                            self._where,
                        )
                    ]
                )
            results = self._signatures(f"{last_applied}..{commit}", allowed_signers, gpg_home)
            if not any(sha == commit for sha, *_ in results):
                results += self._signatures(commit, allowed_signers, gpg_home, single=True)
        else:
            results = self._signatures(commit, allowed_signers, gpg_home, single=True)
        tip: SignatureInfo | None = None
        for sha, status, key, signer in results:
            kind: Literal["ssh", "openpgp"] = "ssh" if key.startswith("SHA256:") else "openpgp"
            reason = _refusal(status, kind, key, gpg_home is not None, allowed_signers is not None)
            if reason is None:
                if sha == commit:
                    tip = SignatureInfo(sha, kind, key, signer, status)
            elif policy != "none":
                raise SignatureRefused([Problem(f"commit {sha}: {reason}", self._where)])
        return tip

    def _signatures(
        self,
        revs: str,
        allowed_signers: str | os.PathLike[str] | None,
        gpg_home: str | os.PathLike[str] | None,
        single: bool = False,
    ) -> list[tuple[str, str, str, str]]:
        """(sha, %G?, key, signer) for each commit; %GF (full fingerprint) when git has it."""
        env = {"GNUPGHOME": str(gpg_home)} if gpg_home is not None else {}
        signers = str(allowed_signers) if allowed_signers is not None else os.devnull
        status, out, err = self._git.run(
            "-c", f"gpg.ssh.allowedSignersFile={signers}",
            "log", *(["-1"] if single else []),
            "--format=%H%x1f%G?%x1f%GK%x1f%GF%x1f%GS%x1e", revs, "--",
            env=env,
        )  # fmt: skip
        if status != 0:
            raise SignatureRefused(
                [Problem(f"cannot read signatures of {revs}: {_tail(err)}", self._where)]
            )
        results = []
        for record in out.split("\x1e"):
            fields = record.strip("\n").split("\x1f")
            if len(fields) == 5:
                sha, letter, key_id, fingerprint, signer = fields
                results.append((sha, letter, fingerprint or key_id, signer))
        return results


_REFUSALS = {
    "N": "not signed",
    "B": "bad signature",
    "X": "good signature, but the signature has expired",
    "Y": "good signature, but the key has expired",
    "R": "good signature, but the key has been revoked",
    "E": "signature cannot be checked (key {key} is not in the keyring)",
}


def _refusal(
    status: str, kind: str, key: str, dedicated_keyring: bool, has_signers_file: bool
) -> str | None:
    """Why a %G? status fails the policy, or None when it passes (see `verify`)."""
    if status == "G":
        return None
    if status == "U":
        if kind == "openpgp":
            if dedicated_keyring:
                return None
            return f"key {key} is in the default keyring but not trusted (validity unknown)"
        if not has_signers_file:
            return f"signed with SSH key {key}, but no allowed-signers file is configured"
        return f"SSH key {key} is not in the allowed-signers file"
    return _REFUSALS.get(status, f"unknown signature status {status!r}").format(key=key)


class _FetchFailed(Exception):
    def __init__(self, tail: str) -> None:
        super().__init__(tail)
        self.tail = tail


@dataclass
class StateFileError(ReconcilerError):
    """The source state file cannot be read; fix or delete it."""

    reaction: Reaction = Reaction.FAILED


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Refusal(_State):
    """A commit that was refused, so it is not retried until a newer tip arrives."""

    commit: str
    reason: str
    at: datetime


class Pin(_State):
    """An operator's rollback: use this commit until unpinned."""

    commit: str
    since: datetime
    reason: str = ""


class SourceState(_State):
    """What the source stage remembers between runs (`<state_dir>/source-state.json`)."""

    last_good: str | None = None
    last_good_at: datetime | None = None
    refused: Refusal | None = None
    pinned: Pin | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SourceState:
        """The saved state; an empty state when the file does not exist yet."""
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except FileNotFoundError:
            return cls()
        except (OSError, ValidationError) as err:
            raise StateFileError(
                [Problem(f"unreadable source state ({err}); delete it to start afresh", str(path))]
            ) from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file, fsync, rename, fsync directory)."""
        write_atomic(path, self.model_dump_json(indent=2).encode() + b"\n")

    def mark_good(self, commit: str, at: datetime | None = None) -> SourceState:
        """A run of `commit` worked: it is the new last good, and any refusal is forgotten."""
        return self.model_copy(
            update={"last_good": commit, "last_good_at": at or _now(), "refused": None}
        )

    def mark_refused(self, commit: str, reason: str, at: datetime | None = None) -> SourceState:
        return self.model_copy(
            update={"refused": Refusal(commit=commit, reason=reason, at=at or _now())}
        )

    def pin(self, commit: str, reason: str = "", at: datetime | None = None) -> SourceState:
        return self.model_copy(
            update={"pinned": Pin(commit=commit, since=at or _now(), reason=reason)}
        )

    def unpin(self) -> SourceState:
        return self.model_copy(update={"pinned": None})

    def staleness(self, now: datetime | None = None) -> timedelta | None:
        """How long ago the last good commit was applied (None: never)."""
        if self.last_good_at is None:
            return None
        return (now or _now()) - self.last_good_at


def _now() -> datetime:
    return datetime.now(UTC)


class Why(StrEnum):
    """Why `decide` chose the commit it chose."""

    PINNED = "pinned"  # an operator's rollback pin wins over the tip
    NEW_TIP = "new-tip"  # the tip is new: try it
    UNCHANGED = "unchanged"  # the tip is the last good commit: run it again
    REFUSED_TIP = "refused-tip"  # the tip was refused before: keep the last good commit
    NOTHING = "nothing"  # the tip was refused and nothing ever worked: apply nothing


@dataclass(frozen=True)
class Decision:
    commit: str | None
    why: Why
    detail: str


def decide(state: SourceState, tip: str, retry_refused: bool = False) -> Decision:
    """Which commit to run: the pin, else the tip unless it was refused already."""
    if state.pinned is not None:
        return Decision(
            state.pinned.commit,
            Why.PINNED,
            f"pinned to {state.pinned.commit} since {state.pinned.since.isoformat()}",
        )
    refused = state.refused
    if refused is not None and refused.commit == tip and not retry_refused:
        detail = f"tip {tip} was refused at {refused.at.isoformat()}: {refused.reason}"
        if state.last_good is None:
            return Decision(None, Why.NOTHING, f"{detail}; no commit has worked yet")
        return Decision(state.last_good, Why.REFUSED_TIP, f"{detail}; keeping {state.last_good}")
    if tip == state.last_good:
        return Decision(tip, Why.UNCHANGED, f"tip {tip} is the last good commit")
    return Decision(tip, Why.NEW_TIP, f"new tip {tip} (last good {state.last_good or 'none'})")
