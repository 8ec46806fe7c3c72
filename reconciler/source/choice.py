"""The source of a run from the config remote: which commit the node enforces, and why.

A node only ever applies a commit it trusts. It fetches, then runs the branch tip
unless an operator pinned another commit or the tip was refused before. When the tip
cannot be fetched, or a new tip fails to verify, parse or render, the node keeps
working on the last commit that worked, remembers the refusal so the tip is not tried
again every run, and the report says why and how stale that is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from reconciler.agent.settings import AgentConfig
from reconciler.errors import Problem, ReconcilerError, Refused, SettingsError
from reconciler.quietrun import quiet_source
from reconciler.record.report import SourceReport
from reconciler.source import stamps, tip
from reconciler.source.cache import (
    HOST_KEY_RE,
    RevisionNotFound,
    SourceCache,
    SourceUnavailable,
    redact,
)
from reconciler.source.signatures import verify
from reconciler.source.snapshot import Snapshot
from reconciler.source.state import RETRY, SourceState, Why, decide
from reconciler.statedir import StateDir
from reconciler.timewords import ago


def cache_of(settings: AgentConfig, state: StateDir) -> SourceCache:
    """The node's cache of the config repo, fetched from the remote and mirrors of `settings`
    (the URL the node's name picks first, the remote next)."""
    return SourceCache(state.source_cache, settings.remote, settings.mirrors,
                       settings.fetch_timeout, spread_by=settings.node)


class GitSource:
    """The commit a run enforces, chosen from the node's cache of the config remote.

    `open` fetches and chooses on its first call; when a step refuses a new tip,
    `fall_back` remembers the refusal and moves to the last good commit.
    """

    def __init__(
        self,
        settings: AgentConfig,
        state: StateDir,
        *,
        fetch: bool = True,  # False: no network, enforce the commit already in use
        allow_rewind: bool = False,
        retry_refused: bool = False,
        clock: Callable[[], datetime] | None = None,  # when a commit first worked
    ) -> None:
        self.settings = settings
        self.state = state
        self.fetch = fetch
        self.allow_rewind = allow_rewind
        self.retry_refused = retry_refused
        self.clock = clock
        self.cache = cache_of(settings, state)
        self.commit: str | None = None  # the commit the run is tied to, even a refused one
        self.tip: str | None = None
        self.remote: str | None = None
        self.failover: str | None = None
        self.stale: str | None = None
        self.signed_by: str | None = None
        self.refused: str | None = None  # why the tip (or the remote) was refused
        self.pinned = False
        self.rollout: str | None = None  # why the node waits for earlier waves
        self._memory = SourceState()
        self._new_tip = False  # the commit is the tip, tried for the first time or again
        self._chosen = False

    def open(self) -> Snapshot:
        """The files of the commit to run: verified, straight from the cache."""
        self._chosen_once()
        try:
            return self._verified()
        except ReconcilerError:
            # The cache is not checked on every run: a damaged one must not get a good
            # commit refused. Check it now; when it was repaired, try once more.
            if not any("re-cloned" in repair for repair in self.cache.ensure_healthy()):
                raise
            return self._verified()

    def quiet_id(self) -> str | None:
        """The commit to run, fetched and chosen, when it is the last good one or the pin
        (verified when it became so), with what its signatures are checked against (a
        revoked key must take the full run, which checks again). None for a new tip."""
        self._chosen_once()
        if self.commit is None or (self._new_tip and self.commit != self._memory.last_good):
            return None
        settings = self.settings
        return quiet_source(self.commit, settings.require_signed, [
            path for path in (settings.allowed_signers, settings.gpg_home) if path is not None])

    def _chosen_once(self) -> None:
        if not self._chosen:
            self._chosen = True
            self._choose()

    def _verified(self) -> Snapshot:
        assert self.commit is not None
        settings = self.settings
        policy = settings.require_signed
        if not self._new_tip and policy != "none":
            policy = "head"  # the commit was verified when it became the last good or the pin
        if policy != "none":
            _check_signature_settings(settings)
        signer = verify(self.cache, policy, self.commit,
                        self._memory.last_good if self._new_tip else None,
                        settings.allowed_signers, settings.gpg_home,
                        seen=self._memory.first_seen, signers=settings.signers)
        self.signed_by = str(signer) if signer else None
        return self.cache.open(self.commit)

    def _choose(self) -> None:
        """Fetch, and pick the commit: the tip, the pin, or the last good one."""
        memory = self._memory = SourceState.load(self.state.source_state)
        if not self.fetch and memory.in_use is not None:
            self.pinned = memory.pinned is not None
            self.commit = memory.in_use
            return
        try:
            unmoved = self._unmoved_tip(memory)
            if unmoved is not None:
                self.remote = redact(str(self.settings.tip_url))
            self.tip = tip_now = unmoved or self._fetch()
        except (SourceUnavailable, RevisionNotFound) as exc:
            distrusted = [f"{p.path}: {p.message}" for p in exc.problems
                          if HOST_KEY_RE.search(p.message)]
            if distrusted:
                self.refused = "the remote's host key is not the one known: " + \
                    "; ".join(distrusted)
            if memory.in_use is None:
                raise
            reason = "; ".join(p.message for p in exc.problems)
            self.stale = (f"source unavailable ({reason}); using last good "
                          f"{memory.in_use[:12]}{_age(memory)}")
            self.commit = memory.in_use
            return
        if tip_now not in memory.first_seen:
            memory = self._memory = memory.saw(tip_now)
            memory.save(self.state.source_state)
        decision = decide(memory, tip_now, self.retry_refused, judged_by(self.settings))
        self.commit = decision.commit or tip_now  # a refused run is tied to the tip it refuses
        if decision.why is Why.NOTHING:
            self.stale = f"{decision.detail} ({RETRY})"
            raise Refused.because(self.stale)
        if decision.why is Why.PINNED:
            self.pinned = True
            self.stale = decision.detail
        elif decision.why is Why.REFUSED_TIP:
            self.stale = f"{decision.detail}{_age(memory)} ({RETRY})"
            self.refused = decision.detail
        else:
            self._new_tip = True
            if decision.why is Why.NEW_TIP:
                rewound = self.cache.check_forward(memory.last_good, tip_now, self.allow_rewind)
                if rewound:
                    self.stale = f"allowed rewind: {rewound}"

    def _unmoved_tip(self, memory: SourceState) -> str | None:
        """The last good commit, when the tip file (`tip-url`) names it as the followed
        branch's tip, git was asked recently enough to take its word (source/tip.py) and
        the cache's periodic check is not due (it goes with a fetch)."""
        settings = self.settings
        if settings.tip_url is None or settings.branch is None or memory.last_good is None \
                or stamps.due(self.cache.path, stamps.FETCHED, settings.node, stamps.GIT_PERIOD) \
                or self.cache.check_due(settings.node, time.time()):
            return None
        named = tip.ask(settings.tip_url, settings.branch, self.state.path,
                        settings.fetch_timeout)
        return named if named == memory.last_good else None

    def _fetch(self) -> str:
        """Fetch from the first URL that answers, and read the tip (or the pin) there."""
        settings = self.settings
        self.cache.ensure_healthy(fsck=self.cache.check_due(settings.node, time.time()))
        # A pinned commit may be on any branch; otherwise only the followed one.
        fetched = self.cache.fetch(settings.branch if settings.commit is None else None)
        if settings.tip_url is not None:
            stamps.note(self.cache.path, stamps.FETCHED)
        self.remote = fetched.url
        self.failover = "; ".join(f"{redact(url)} failed: {tail}"
                                  for url, tail in fetched.failures) or None
        return self.cache.choose(branch=settings.branch, commit=settings.commit)

    def fall_back(self, error: ReconcilerError) -> bool:
        """A step refused the commit with `error`. A new tip is remembered as refused (by
        these settings) and the run moves to the last good commit (True); otherwise the
        run is over (False). A mistake in the node's own settings refuses the run, never
        the commit."""
        if not self._new_tip or self.tip is None or isinstance(error, SettingsError):
            return False
        self._new_tip = False
        reason = "; ".join(p.brief() for p in error.problems)
        self.refused = f"tip {self.tip} refused: {reason}"
        memory = self._memory = self._memory.mark_refused(self.tip, reason,
                                                          settings=judged_by(self.settings))
        memory.save(self.state.source_state)
        if memory.last_good is None:
            self.stale = f"tip {self.tip[:12]} refused; no commit has worked yet ({RETRY})"
            return False
        self.stale = (f"tip {self.tip[:12]} refused: {reason}; keeping last good "
                      f"{memory.last_good[:12]}{_age(memory)} ({RETRY})")
        self.commit = memory.last_good
        return True

    @property
    def trying_tip(self) -> bool:
        """Whether the run is tied to a tip it has not enforced before (or tries again)."""
        return self._new_tip

    def keep(self, reason: str) -> bool:
        """A rollout holds the new tip back: run the last good commit instead, saying
        why (True), or, with no commit that ever worked, go on with the tip (False)."""
        last_good = self._memory.last_good
        if not self._new_tip or last_good is None:
            return False
        self._new_tip = False
        self.rollout = reason
        self.commit = last_good
        return True

    def worked(self) -> None:
        """The run enforced its commit: it is the last good one from now on."""
        if self.commit is None:
            return
        self._new_tip = False  # verified, and from now on the last good commit
        memory = SourceState.load(self.state.source_state)
        if memory.last_good != self.commit or memory.last_good_at is None:
            at = self.clock() if self.clock is not None else None
            memory.mark_good(self.commit, at).save(self.state.source_state)

    def reverted(self, reason: str) -> None:
        """The run's health checks failed and it put back what it changed: the commit is
        refused for this node (kept on the last good until a newer commit arrives, or
        `--retry-refused`)."""
        if self.commit is None or self.commit == self._memory.last_good:
            return
        at = self.clock() if self.clock is not None else None
        memory = SourceState.load(self.state.source_state)
        memory.mark_refused(self.commit, f"reverted: {reason}", at,
                            settings=judged_by(self.settings)).save(self.state.source_state)
        self.refused = f"tip {self.commit} refused: reverted: {reason}"

    def describe(self) -> SourceReport:
        """What the run report says about where its commit came from."""
        return SourceReport(
            commit=self.commit, subject=self.cache.subject(self.commit),
            branch=self.settings.branch, tip=self.tip, signed_by=self.signed_by,
            remote=self.remote, failover=self.failover, stale=self.stale, pinned=self.pinned,
            refused=self.refused,
            rollout=self.rollout,
        )  # fmt: skip


def judged_by(settings: AgentConfig) -> str:
    """A fingerprint of the node settings that judge a commit (its node name, signature
    policy and trust files, age identity, root): a refusal holds only while they are the
    same, so fixing agent.toml or a trust file retries the commit at once."""
    files = {str(path): _file_state(path) for path in (
        settings.allowed_signers, settings.gpg_home, settings.identity) if path is not None}
    judged = {"node": settings.node, "require-signed": settings.require_signed,
              "signers": sorted(settings.signers), "root": str(settings.root), "files": files}
    return hashlib.sha256(json.dumps(judged, sort_keys=True).encode()).hexdigest()[:16]


def _file_state(path: Path) -> list[int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return [found.st_ino, found.st_size, found.st_mtime_ns]


def _check_signature_settings(settings: AgentConfig) -> None:
    """The trust files agent.toml names exist: a missing one is the node's mistake, not a
    bad signature on the commit."""
    for key, path in (("allowed-signers", settings.allowed_signers),
                      ("gpg-home", settings.gpg_home)):
        if path is not None and not path.exists():
            raise SettingsError([Problem(
                f"{key} file {path} does not exist (`{key}` in agent.toml): create it or fix "
                "the setting, then run again; no commit was refused")])


def _age(memory: SourceState) -> str:
    age = memory.staleness()
    return f" (applied {ago(age.total_seconds())} ago)" if age is not None else ""
