"""One full cycle from agent.toml: lock, fetch, choose and verify the commit, compile,
render, plan, apply or audit, record.

A node only ever applies a commit it trusts. When the tip cannot be fetched, or fails
to verify, parse or render, the node keeps working on the last commit that worked and
the report says why and how stale that is.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.agent.settings import AgentConfig
from reconciler.atomicfile import write_atomic
from reconciler.compile.compiler import load_fleet
from reconciler.errors import Problem, ReconcilerError, UsageError
from reconciler.lock import NodeLock
from reconciler.record import report as reports
from reconciler.record.history import History
from reconciler.record.report import RunReport, SourceReport
from reconciler.run import Desired, RunClock, converge, desire
from reconciler.source.cache import (
    Refusal,
    RevisionNotFound,
    SourceCache,
    SourceState,
    SourceUnavailable,
    Why,
    decide,
)
from reconciler.source.snapshot import open_snapshot
from reconciler.statedir import (
    BACKUPS,
    HISTORY,
    LAST_RUN,
    LAST_SUCCESS,
    LOCK,
    SOURCE_CACHE,
    SOURCE_STATE,
    TEMPLATE_CACHE,
)
from reconciler.system.interface import System
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import ReadOnlySystem

NOTHING_TO_SAY = ("in-sync",)


@dataclass
class CycleOptions:
    """How this particular cycle runs, beyond agent.toml."""

    wait: float = 0.0
    allow_rewind: bool = False
    retry_refused: bool = False
    host_commands: bool | None = None
    should_stop: Callable[[], bool] = field(default=lambda: False)
    system_wrapper: Callable[[System], System] | None = None
    fetch: bool = True  # False: no network, enforce the commit already in use
    only: frozenset[str] | None = None  # action ids to check (a drift-watch event)


@dataclass
class _Chosen:
    """The commit this cycle enforces, and what the operator must know about it."""

    commit: str | None = None
    tip: str | None = None
    remote: str | None = None
    stale: str | None = None
    signed_by: str | None = None
    pinned: bool = False
    desired: Desired | None = None
    problems: list[str] = field(default_factory=list)


def state_path(cfg: AgentConfig, name: str) -> str:
    return os.path.join(str(cfg.state_dir), name)


def run_cycle(cfg: AgentConfig, options: CycleOptions | None = None) -> RunReport:
    """Run one cycle holding the node lock; always returns a report (refused ones too)."""
    options = options or CycleOptions()
    clock = RunClock()
    _ensure_dir(str(cfg.state_dir), "state-dir", 0o700)
    _ensure_dir(str(cfg.root), "root", 0o755)  # a demo or chroot root may be new
    with _take_lock(cfg, options):
        chosen = _choose(cfg, options)
        if chosen.desired is None:
            report = reports.refused(
                cfg.node, cfg.mode, str(cfg.root), chosen.commit,
                str(cfg.max_severity or ""), clock.started, clock.elapsed(),
                chosen.problems,
            )  # fmt: skip
        else:
            system: System = LocalSystem(
                str(cfg.root), host_commands=options.host_commands,
                backup_dir=state_path(cfg, BACKUPS),
            )  # fmt: skip
            if options.system_wrapper is not None:
                system = options.system_wrapper(system)
            report = converge(chosen.desired, system, str(cfg.state_dir), cfg.mode,
                              cfg.max_severity, options.should_stop, options.only, clock)
            _remember_good(cfg, chosen)
        report.source = SourceReport(
            commit=chosen.commit, subject=subject(cfg, chosen.commit), branch=cfg.branch,
            tip=chosen.tip, signed_by=chosen.signed_by, remote=chosen.remote,
            stale=chosen.stale, pinned=chosen.pinned,
        )  # fmt: skip
        record(cfg, report, chosen.desired)
    return report


def _ensure_dir(path: str, key: str, mode: int) -> None:
    """Create a directory the agent settings name, or say clearly why it cannot be used."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise UsageError([Problem(f"cannot use it as the {key} directory: "
                                  f"{exc.strerror or exc}", path)]) from None


def _take_lock(cfg: AgentConfig, options: CycleOptions) -> NodeLock:
    """The node lock, waiting up to `options.wait` but giving up as soon as asked to stop
    (a SIGTERM must not sit out a long --wait)."""
    lock = NodeLock(state_path(cfg, LOCK))
    lock.acquire(wait=options.wait, should_stop=options.should_stop)
    return lock


def _cache(cfg: AgentConfig) -> SourceCache:
    return SourceCache(cfg.state_dir, cfg.remote, cfg.mirrors, cfg.fetch_timeout)


def _choose(cfg: AgentConfig, options: CycleOptions) -> _Chosen:
    """Fetch, pick the commit (tip, pin, or last good) and compile it; never raises."""
    state = SourceState.load(state_path(cfg, SOURCE_STATE))
    cache = _cache(cfg)
    chosen = _Chosen()
    if not options.fetch:
        current = state.pinned.commit if state.pinned else state.last_good
        if current is not None:
            chosen.pinned = state.pinned is not None
            return _compile(cfg, cache, chosen, current, state, verify_range=False)
    try:
        cache.ensure_healthy()
        chosen.remote = cache.fetch().url
        chosen.tip = cache.choose(branch=cfg.branch, commit=cfg.commit)
    except (SourceUnavailable, RevisionNotFound) as exc:
        reason = "; ".join(p.message for p in exc.problems)
        fallback = state.pinned.commit if state.pinned else state.last_good
        if fallback is None:
            chosen.problems = [str(p) for p in exc.problems]
            return chosen
        chosen.stale = f"source unavailable ({reason}); using last good {fallback[:12]}" + \
            _age(state)
        return _compile(cfg, cache, chosen, fallback, state, verify_range=False)
    decision = decide(state, chosen.tip, options.retry_refused)
    if decision.commit is None:
        chosen.commit = chosen.tip  # the run is tied to the commit it refuses, as before
        chosen.problems = [decision.detail]
        chosen.stale = decision.detail
        return chosen
    if decision.why is Why.PINNED:
        chosen.pinned = True
        chosen.stale = decision.detail
        return _compile(cfg, cache, chosen, decision.commit, state, verify_range=False)
    if decision.why is Why.REFUSED_TIP:
        chosen.stale = decision.detail + _age(state)
        return _compile(cfg, cache, chosen, decision.commit, state, verify_range=False)
    try:
        if decision.why is Why.NEW_TIP:
            rewound = cache.check_forward(state.last_good, chosen.tip, options.allow_rewind)
            if rewound:
                chosen.stale = f"allowed rewind: {rewound}"
        return _compile(cfg, cache, chosen, chosen.tip, state, verify_range=True, strict=True)
    except ReconcilerError as exc:
        reason = "; ".join(p.message if not p.path else str(p) for p in exc.problems)
        state = state.mark_refused(chosen.tip, reason)
        state.save(state_path(cfg, SOURCE_STATE))
        if state.last_good is None:
            chosen.problems = [str(p) for p in exc.problems]
            chosen.stale = f"tip {chosen.tip[:12]} refused; no commit has worked yet"
            return chosen
        chosen.stale = f"tip {chosen.tip[:12]} refused: {reason}; keeping last good " \
            f"{state.last_good[:12]}" + _age(state)
        chosen.problems = []
        return _compile(cfg, cache, chosen, state.last_good, state, verify_range=False)


def _compile(
    cfg: AgentConfig, cache: SourceCache, chosen: _Chosen, commit: str, state: SourceState,
    verify_range: bool, strict: bool = False,
) -> _Chosen:
    """Verify and compile `commit`; with `strict`, errors propagate so the tip is refused."""
    chosen.commit = commit
    try:
        policy = cfg.require_signed if verify_range or cfg.require_signed == "none" else "head"
        signer = cache.verify(policy, commit, state.last_good if verify_range else None,
                              cfg.allowed_signers, cfg.gpg_home)
        chosen.signed_by = str(signer) if signer else None
        snapshot = open_snapshot(str(cache.path), commit)
        chosen.desired = desire(load_fleet(snapshot), cfg.node,
                                bytecode_dir=state_path(cfg, TEMPLATE_CACHE))
    except ReconcilerError as exc:
        if strict:
            raise
        chosen.problems = [str(p) for p in exc.problems]
        chosen.desired = None
    return chosen


def _age(state: SourceState) -> str:
    age = state.staleness()
    return f" (applied {int(age.total_seconds())}s ago)" if age is not None else ""


def _remember_good(cfg: AgentConfig, chosen: _Chosen) -> None:
    if chosen.commit is None:
        return
    path = state_path(cfg, SOURCE_STATE)
    state = SourceState.load(path)
    if state.last_good != chosen.commit or state.last_good_at is None:
        state.mark_good(chosen.commit).save(path)


def subject(cfg: AgentConfig, commit: str | None) -> str | None:
    """The first line of a config commit's message, from the cache (None if unknown)."""
    if commit is None:
        return None
    found = subprocess.run(
        ["git", "-C", state_path(cfg, SOURCE_CACHE), "log", "-1", "--format=%s", commit],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return found.stdout.strip() or None if found.returncode == 0 else None


# ---------------------------------------------------------------- record


def fingerprint(report: RunReport) -> str:
    """What a run left outstanding, without timings: two runs with the same fingerprint
    say the same. What a run applied is left out (a run that applied is always news)."""
    changes = [
        (a.id, c.op, c.path, c.status, c.drift, c.diff)  # summaries vary with parent dirs
        for a in report.actions for c in a.changes if c.status != "applied"
    ] + [(o.path, o.op, o.status) for o in report.orphans if o.status != "applied"]
    material = json.dumps([report.config_commit, report.result, report.problems, changes],
                          sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def record(cfg: AgentConfig, report: RunReport, desired: Desired | None) -> None:
    """Write last-run.json; add a history commit when the run has something new to say.

    New is: the first run, a tip refused by this very run, or a result other than
    in-sync that differs from the previous record (or applied something). A tip that
    stays refused run after run is recorded once.
    """
    data = report.model_dump_json(indent=2).encode() + b"\n"
    write_atomic(state_path(cfg, LAST_RUN), data, mode=0o600)
    if report.result not in ("refused", "failed", "interrupted"):
        stamp = {"time": report.started.isoformat(), "commit": report.config_commit}
        write_atomic(state_path(cfg, LAST_SUCCESS), json.dumps(stamp).encode(), 0o600)
    history = History(state_path(cfg, HISTORY), cfg.node)
    refusal = _refusal_seen(cfg, report)
    refused_now = refusal is not None and refusal.at >= report.started
    if history.head() is not None and not refused_now:
        if report.result in NOTHING_TO_SAY or (report.result == "refused" and refusal is not None):
            return
        previous = RunReport.model_validate_json(history.read("HEAD", "run.json"))
        if fingerprint(previous) == fingerprint(report) and not report.counts.applied:
            return
    refused_tip = refusal if refused_now else None
    # Without a desired state the run looked at no file: the last snapshot still holds.
    history.record(_snapshot(cfg, desired), data, _summary(report, refused_tip),
                   _trailers(report, refused_tip), deleted=None if desired is not None else [])


def _refusal_seen(cfg: AgentConfig, report: RunReport) -> Refusal | None:
    """The refusal of the tip this run saw, when the run did not use that tip."""
    try:
        refused = SourceState.load(state_path(cfg, SOURCE_STATE)).refused
    except ReconcilerError:
        return None
    source = report.source
    if refused is None or source is None or source.tip != refused.commit:
        return None
    used = report.config_commit == refused.commit and report.result != "refused"
    return None if used else refused


def _snapshot(cfg: AgentConfig, desired: Desired | None) -> dict[str, bytes]:
    """The managed files as they now are on the node; secrets as their sha256 only."""
    if desired is None:
        return {}
    system = ReadOnlySystem(LocalSystem(str(cfg.root), host_commands=False))
    files: dict[str, bytes] = {}
    for items in desired.rendered.values():
        for item in items:
            try:
                live = system.lstat(item.path)
                if live is None or live.kind != "file":
                    continue
                content = system.read(item.path)
            except (OSError, ValueError) as exc:
                files[item.path] = f"unreadable: {exc}\n".encode()
                continue
            if item.action.secret:
                content = f"secret sha256:{hashlib.sha256(content).hexdigest()}\n".encode()
            files[item.path] = content
    return files


def _summary(report: RunReport, refused_tip: Refusal | None) -> str:
    c = report.counts
    commit = (report.config_commit or "none")[:12]
    title = f": {report.source.subject}" if report.source and report.source.subject else ""
    if report.result == "refused":
        first = report.problems[0] if report.problems else "refused"
        return _one_line(f"refused at {commit}: {first}")
    parts = [f"{report.result} at {commit}{title}"]
    details = [f"{n} {w}" for n, w in ((c.applied, "applied"), (c.pending, "pending"),
                                        (c.edited_by_hand, "edited by hand"), (c.held, "held"),
                                        (c.failed, "failed"), (c.orphans, "orphans")) if n]
    if details:
        parts.append("(" + ", ".join(details) + ")")
    if refused_tip is not None:
        parts.append(f"; tip {refused_tip.commit[:12]} refused: {refused_tip.reason}")
    return _one_line(" ".join(parts))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _trailers(report: RunReport, refused_tip: Refusal | None) -> dict[str, str]:
    changed = sorted({c.path or a.id for a in report.actions for c in a.changes
                      if c.status in ("applied", "pending")})
    held = sorted({c.path or a.id for a in report.actions for c in a.changes
                   if c.status == "held"})
    failed = sorted({a.id for a in report.actions if a.status == "failed"})
    signer = report.source.signed_by if report.source else None
    trailers = {
        "Config-Commit": report.config_commit or "none",
        "Config-Signed-By": signer or "unsigned",
        "Node": report.node,
        "Mode": report.mode,
        "Result": report.result,
        "Changed": _listing(changed),
        "Held": _listing(held),
        "Failed": _listing(failed),
    }
    if refused_tip is not None:
        trailers["Refused-Tip"] = refused_tip.commit
    return trailers


def _listing(items: list[str]) -> str:
    if not items:
        return "0"
    shown = " ".join(items[:20])
    more = f" (+{len(items) - 20} more)" if len(items) > 20 else ""
    return f"{len(items)}: {shown}{more}"


# ---------------------------------------------------------------- rollback


def pin(cfg: AgentConfig, target: str, wait: float = 0.0) -> str:
    """Pin the node to config commit `target` (an operator's rollback); returns its sha.

    Fetches first so a commit pushed a moment ago can be named; when no remote answers,
    a commit already in the cache can still be pinned (a rollback is often wanted
    exactly while things are broken). The next run applies the pin.
    """
    _ensure_dir(str(cfg.state_dir), "state-dir", 0o700)
    with NodeLock(state_path(cfg, LOCK), wait=wait):
        cache = _cache(cfg)
        unreachable = ""
        try:
            cache.ensure_healthy()
            cache.fetch()
        except SourceUnavailable as exc:
            unreachable = "; the remote is unreachable: " + "; ".join(str(p) for p in exc.problems)
        sha = _resolve(cache, target)
        if sha is None:
            raise UsageError.because(f"unknown config commit {target!r}{unreachable}")
        path = state_path(cfg, SOURCE_STATE)
        SourceState.load(path).pin(sha, f"reconciler rollback --to {target}").save(path)
    return sha


def release(cfg: AgentConfig, wait: float = 0.0) -> str | None:
    """Drop the rollback pin so the next run follows the branch; returns what was pinned."""
    _ensure_dir(str(cfg.state_dir), "state-dir", 0o700)
    with NodeLock(state_path(cfg, LOCK), wait=wait):
        path = state_path(cfg, SOURCE_STATE)
        state = SourceState.load(path)
        if state.pinned is not None:
            state.unpin().save(path)
        return state.pinned.commit if state.pinned else None


def _resolve(cache: SourceCache, rev: str) -> str | None:
    if not cache.path.exists() or rev.startswith("-"):
        return None
    found = subprocess.run(
        ["git", "-C", str(cache.path), "rev-parse", "--verify", "--quiet", "--end-of-options",
         f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return found.stdout.strip() or None if found.returncode == 0 else None


# ---------------------------------------------------------------- the commit in use


def current_commit(cfg: AgentConfig) -> str | None:
    """The commit this node enforces now (the pin, else the last good), without fetching."""
    try:
        state = SourceState.load(state_path(cfg, SOURCE_STATE))
    except ReconcilerError:
        return None
    return state.pinned.commit if state.pinned else state.last_good


def current_desired(cfg: AgentConfig, commit: str) -> Desired | None:
    """`commit` compiled and rendered for this node from the cache, without fetching or
    verifying again (it was verified when it became the last good); None when it no
    longer compiles or the cache lacks it."""
    try:
        snapshot = open_snapshot(str(_cache(cfg).path), commit)
        return desire(load_fleet(snapshot), cfg.node,
                      bytecode_dir=state_path(cfg, TEMPLATE_CACHE))
    except (ReconcilerError, OSError, ValueError):
        return None
