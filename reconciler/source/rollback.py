"""An operator's rollback: pin the node's source to an older config commit, or release it."""

from __future__ import annotations

from reconciler.agent.settings import AgentConfig
from reconciler.errors import UsageError
from reconciler.lock import NodeLock
from reconciler.source.cache import SourceUnavailable
from reconciler.source.choice import cache_of
from reconciler.source.state import Pin, SourceState
from reconciler.statedir import StateDir


def pin(settings: AgentConfig, target: str, wait: float = 0.0) -> tuple[str, Pin | None]:
    """Pin the node to config commit `target`; returns its sha and the pin it replaced.
    The next run applies it.

    Fetches first so a commit pushed a moment ago can be named; when no remote answers,
    a commit already in the cache can still be pinned (a rollback is often wanted
    exactly while things are broken).
    """
    state = StateDir(settings.state_dir)
    state.ensure()
    with NodeLock(state.lock, wait=wait):
        cache = cache_of(settings, state)
        unreachable = ""
        try:
            cache.ensure_healthy()
            cache.fetch()
        except SourceUnavailable as exc:
            unreachable = "; the remote is unreachable: " + "; ".join(str(p) for p in exc.problems)
        sha = cache.resolve(target)
        if sha is None:
            raise UsageError.because(f"unknown config commit {target!r}{unreachable}")
        memory = SourceState.load(state.source_state)
        memory.pin(sha, f"reconciler rollback --to {target}").save(state.source_state)
    return sha, memory.pinned


def unpin(settings: AgentConfig, sha: str, previous: Pin | None, wait: float = 0.0) -> None:
    """Undo `pin` of `sha` whose run did not apply it: the pin it replaced comes back."""
    state = StateDir(settings.state_dir)
    with NodeLock(state.lock, wait=wait):
        memory = SourceState.load(state.source_state)
        if memory.pinned is not None and memory.pinned.commit == sha:
            memory.model_copy(update={"pinned": previous}).save(state.source_state)


def release(settings: AgentConfig, wait: float = 0.0) -> str | None:
    """Drop the pin so the next run follows the branch again; returns what was pinned."""
    state = StateDir(settings.state_dir)
    state.ensure()
    with NodeLock(state.lock, wait=wait):
        memory = SourceState.load(state.source_state)
        if memory.pinned is None:
            return None
        memory.unpin().save(state.source_state)
        return memory.pinned.commit
