"""One run on one node, as small ordered steps over a `RunState`:

    lock → source → compile → render → plan and apply | report (`converge`) → record

Each step reads what the steps before it left in the run state and adds its part;
recording happens in one `finally`, so a run that stops early (refused, interrupted)
is recorded like one that went through. `apply` and `audit` take these steps with the
working tree (or a --rev) as their source; `run` and the agent take them with the
node's cache of the config remote as their source, which may fall back to the last
good commit when a new one is refused. Either way the run is recorded in the node's
state directory (history, last-run.json, metrics). Audit is the same code running
against a system that refuses writes, not a second code path.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reconciler import quiet
from reconciler.apply.executor import execute
from reconciler.apply.leftovers import clear_leftovers
from reconciler.compile.nodeconfig import NodeConfig, Severity
from reconciler.desire import Desired as Desired  # re-exported, as callers of a run find them
from reconciler.desire import desire as desire
from reconciler.desire import rendered
from reconciler.errors import (
    Failed,
    Problem,
    ReconcilerError,
    Refused,
    SettingsError,
    UsageError,
)
from reconciler.facts.gather import gather_live
from reconciler.facts.model import Facts
from reconciler.lock import NodeLock
from reconciler.plan.build import build
from reconciler.plan.change import ApplyContext
from reconciler.plan.probe import Context, Progress, Quiet
from reconciler.record import applied as applied_state
from reconciler.record import desired as desired_pack
from reconciler.record import repeat, report
from reconciler.record.lastrun import UNSUCCESSFUL
from reconciler.record.recorder import Recorder, failed_with
from reconciler.record.recovery import (
    clear_state_leftovers,
    removed_note,
    set_aside_unreadable,
)
from reconciler.render.budget import Budget, RenderStopped
from reconciler.rollout import window
from reconciler.secrets import age
from reconciler.secrets.digest import ContentDigest
from reconciler.source.worktree import Source
from reconciler.statedir import AGE_IDENTITY, StateDir, ensure_directory
from reconciler.system.interface import NotDurable, System
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import LoggingSystem, ReadOnlySystem

if TYPE_CHECKING:  # compiling and rendering are loaded by the runs that do them
    from reconciler.compile.inventory import Fleet
    from reconciler.source.snapshot import Snapshot

Mode = Literal["audit", "change"]


def _never() -> bool:
    return False


@dataclass(frozen=True)
class RunClock:
    """When a run began: wall time for its report, the monotonic clock for its duration.
    Callers start it before compiling, so a report times the whole run."""

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    monotonic: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.monotonic


def converge(
    desired: Desired,
    system: System,
    state_dir: StateDir,
    mode: Mode,
    max_severity: Severity | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    only: frozenset[str] | None = None,
    clock: RunClock | None = None,
    progress: Progress | None = None,
) -> report.RunReport:
    """Plan one node against the live system; in change mode apply and record what was done."""
    clock = clock or RunClock()
    node = desired.node
    limit = window.ceiling(node.policy, max_severity, clock.started)
    ceiling = limit.severity
    previous = applied_state.load(state_dir)
    journal = None
    if mode == "change" and node.health:  # health checks, and what puts back a failed run
        from reconciler.apply.revert import Journal

        journal = Journal(system)
    live = journal or (system if mode == "change" else ReadOnlySystem(system))
    ctx = Context(
        system=live,
        node=node,
        rendered=desired.rendered,
        applied=previous.paths,
        commit=desired.snapshot.revision,
        read_repo=desired.snapshot.read,
        ceiling=ceiling,
        digest=ContentDigest.of_state_dir(state_dir),
        window=(limit.waits_up_to, limit.opens) if limit.waits_up_to is not None else None,
        should_stop=should_stop,
        progress=progress or Quiet(),
    )
    problems: list[str] = []
    notes = []
    durable = True
    try:
        # Everything written in here is made durable in one batch on the way out; only
        # then is the record written (`Walker.caching` says why a crash before is safe).
        with live.caching():
            if mode == "change":
                notes = [removed_note(path) for path in clear_leftovers(live, desired.paths())]
            plan = build(ctx, only)
            outcome = execute(ctx, plan, previous, mode == "change", should_stop)
    except NotDurable as exc:
        # Raised only on leaving `caching`, once every change was made and reported. The
        # record keeps what it said: it must not claim what a crash may undo.
        durable = False
        problems.append(f"{exc.filename}: changes made here may not survive a crash, so "
                        f"they are not recorded as applied: {exc.strerror or exc}")
    done = report.build(node.name, mode, system.root, desired.snapshot.revision, str(ceiling),
                        clock.started, clock.elapsed(), outcome)
    applied = outcome.applied
    if journal is not None:
        from reconciler.apply import health

        done, applied = health.settle(journal, node, done, applied, previous, ApplyContext(
            journal, ctx.commit, ctx.read_repo, frozenset(), ctx.digest), should_stop)
    if mode == "change" and durable and applied != previous:
        try:
            applied_state.save(state_dir, applied)
        except OSError as exc:
            problems.append(f"{state_dir}: could not record what was applied: "
                            f"{exc.strerror or exc}")
    if desired.facts is not None:
        done = done.model_copy(update={"facts": desired.facts})
    if notes:
        done = done.model_copy(update={"notes": notes})
    if problems:
        done = done.model_copy(update={"problems": [*done.problems, *problems],
                                       "result": "failed",
                                       "exit_code": done.exit_code | report.EXIT_FAILED})
    return done


def refuse(
    node: str, mode: Mode, root: str, commit: str | None, error: ReconcilerError,
    clock: RunClock, ceiling: Severity | None = None,
) -> report.RunReport:
    """The report of a run that changed nothing because its input was refused."""
    return report.refused(node, mode, root, commit, str(ceiling) if ceiling is not None else "",
                          clock.started, clock.elapsed(), [p.brief() for p in error.problems])


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class Run:
    """What one run is asked to do: on which node, how, from which source."""

    node: str
    mode: Mode | None  # None: the node's policy (`<policy mode=...>` in the fleet) decides
    root: str
    state: StateDir
    source: Source
    mode_from: str | None = None  # what set `mode`, for the report (None: `apply`, `audit`)
    ceiling: Severity | None = None  # None: the node's policy
    host_commands: bool | None = None
    wait: float = 0.0  # seconds to wait for the node lock
    should_stop: Callable[[], bool] = _never
    stopped_by: Callable[[], int | None] = lambda: None  # the signal behind should_stop
    only: frozenset[str] | None = None  # the action ids to check (a drift-watch event)
    log_calls: Callable[[str], None] | None = None  # debug: one line per system call
    recorder: Recorder | None = None  # None: record only what was applied
    identity: str = AGE_IDENTITY  # the node's age key, for the secrets its templates read
    publish: Callable[[report.RunReport], object] | None = None  # the fleet report, at the end
    progress: Progress = field(default_factory=Quiet)  # how far along, on a terminal
    budget: Budget = field(default_factory=Budget)  # what rendering the node may cost
    # A rollout gate: holds the source back on its last good commit (True) while earlier
    # waves of the fleet's rollout have not taken the new commit.
    rollout: Callable[[Fleet], bool] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # change windows
    quiet_record: bool = False  # record the quiet state of a settled change-mode run (quiet.py)
    quiet_check: bool = False  # and stop early when it says nothing changed
    # How the command prints a report on a pipe: with it, an audit of drifted paths keeps
    # what it printed for the next audit that finds the same (record/repeat.py).
    shown: Callable[[report.RunReport], repeat.Printed] | None = None


@dataclass
class RunState:
    """What a run has found so far; each step adds its part."""

    run: Run
    clock: RunClock = field(default_factory=RunClock)
    lock: NodeLock | None = None
    snapshot: Snapshot | None = None
    fleet: Fleet | None = None
    config: NodeConfig | None = None
    system: System | None = None
    facts: Facts | None = None
    desired: Desired | None = None
    report: report.RunReport | None = None
    notes: list[str] = field(default_factory=list)  # what the run did for itself, to report
    drifted: quiet.Drifted | None = None  # the paths planned alone, against the kept state
    # The paths such a run left alone: found as the settled run left them, which is as the
    # kept state renders them, so the history takes their content from it, unread.
    as_rendered: frozenset[str] = frozenset()


def take_lock(now: RunState) -> None:
    """The node lock (waiting up to `wait`, but not past a stop request), in directories
    that exist: a demo or chroot root may be new."""
    run = now.run
    if not Path(run.root).is_dir():
        ensure_directory(Path(run.root), "root", 0o755)
        now.notes.append(f"created the root directory {run.root}")
    run.state.ensure()
    lock = NodeLock(run.state.lock)
    try:
        lock.acquire(wait=run.wait, should_stop=run.should_stop)
    except OSError as exc:
        raise _error(exc, run) from None
    now.lock = lock


def set_aside_bad_state(now: RunState) -> None:
    """State files that cannot be read are set aside, and the temp files a killed run left
    in the state directory removed, each said in the notes (record/recovery.py)."""
    now.notes.extend(set_aside_unreadable(now.run.state))
    now.notes.extend(removed_note(path) for path in clear_state_leftovers(now.run.state))


def gather_facts(now: RunState) -> None:
    """What the node is (`facts.*` in templates): the running kernel's /proc and /sys,
    and os-release read under the root through the node's system (made here)."""
    run = now.run
    now.system = LocalSystem(run.root, host_commands=run.host_commands,
                             backup_dir=str(run.state.backups),
                             backup_run=now.clock.started.isoformat(),
                             backup_seal=age.sealer(run.identity))
    if run.log_calls is not None:
        now.system = LoggingSystem(now.system, run.log_calls)
    now.facts = gather_live(now.system)


def quiet_cycle(now: RunState) -> None:
    """In sync without compiling, rendering or planning when the config, the node's settings
    and reconciler are the last settled run's and every path is as it left it (quiet.py);
    when some paths differ, only their actions planned and applied, with a full run's
    safety, against the desired state that run kept; without it, the full run."""
    run = now.run
    source_id = run.source.quiet_id() if run.quiet_check and run.only is None else None
    found = quiet.checked(run.state, source_id, run.node, run.root, run.identity,
                          now.facts) if source_id else None
    partial = desired_pack.partial(run.state, found) if found and found.paths else None
    if partial is not None:  # the desired state the settled run kept (record/desired.py)
        now.drifted, now.as_rendered = found, frozenset(partial.unchanged)
        now.snapshot = run.source.open()
        now.config = partial.node
        now.desired = Desired(partial.node, partial.rendered, now.snapshot, now.facts)
        plan_and_apply(now, partial)
    elif found and not found.paths:  # a change-mode run's record: its policy's mode, unless
        settled = found.settled      # the run's own wins
        mode, mode_from = (run.mode, run.mode_from) if run.mode else ("change", settled.mode_from)
        now.report = report.RunReport(
            node=run.node, mode=mode, mode_from=mode_from, root=run.root,
            config_commit=run.source.commit,
            ceiling=str(run.ceiling) if run.ceiling is not None else settled.ceiling,
            started=now.clock.started, duration_s=round(now.clock.elapsed(), 4), facts=now.facts,
            result="in-sync", exit_code=0, counts=report.Counts(in_sync=settled.count))


def read_source(now: RunState) -> None:
    now.snapshot = now.run.source.open()
    now.fleet = now.config = now.desired = now.drifted = None
    now.as_rendered = frozenset()


def compile_config(now: RunState) -> None:
    """The node's configuration; a node name the fleet does not know is a mistake in the
    node's own settings, not in the commit."""
    from reconciler.compile.compiler import compile_node, load_fleet

    assert now.snapshot is not None
    now.fleet = load_fleet(now.snapshot)
    try:
        now.config = compile_node(now.fleet, now.run.node)
    except UsageError as exc:
        raise SettingsError([Problem(f"{p.message} — fix the node name (`node` in agent.toml, "
                                     "or --node) and run again") for p in exc.problems]) from None


def wait_for_rollout(now: RunState) -> None:
    """A new commit waits for the earlier waves of the fleet's rollout: when the gate
    holds the node back, the run compiles the last good commit instead."""
    if now.run.rollout is not None and now.fleet is not None and now.run.rollout(now.fleet):
        read_source(now)
        compile_config(now)


def render_files(now: RunState) -> None:
    from reconciler.render.renderer import Renderer
    from reconciler.secrets.unseal import IdentityUnsealer

    assert now.fleet is not None and now.config is not None
    facts = {now.run.node: now.facts} if now.facts is not None else None
    renderer = Renderer(now.fleet, str(now.run.state.template_cache), facts,
                        IdentityUnsealer(now.run.identity))
    now.run.progress.start("rendering", 0)
    now.desired = rendered(now.fleet, now.config, renderer, now.facts, now.run.budget,
                           now.run.should_stop)


def plan_and_apply(now: RunState, partial: desired_pack.Partial | None = None) -> None:
    """Plan against the live system, then apply (change mode) or report (audit mode) the
    run's actions, or only the `partial` run's (the others' paths in sync). One step:
    planning and applying share the system's probe cache, and leaving that cache is
    where the durability of what was written is checked."""
    run = now.run
    assert now.desired is not None and now.system is not None
    mode, mode_from = decide_mode(run, now.desired.node)
    now.report = converge(now.desired, now.system, run.state, mode, run.ceiling,
                          run.should_stop, partial.touched if partial else run.only, now.clock,
                          run.progress)
    now.report.counts.in_sync += partial.in_sync if partial else 0
    now.report.mode_from = mode_from
    if now.report.result == "interrupted":
        now.report = report.interrupted(now.report, run.stopped_by() or signal.SIGTERM)
    now.as_rendered |= desired_pack.as_rendered(now.desired, now.report)
    try:
        if now.report.result == "reverted":
            run.source.reverted("; ".join(now.report.problems[:2]))
        else:
            run.source.worked()
    except (ReconcilerError, OSError) as exc:
        now.report = failed_with(now.report, f"could not remember the commit as good: "
                                             f"{_error(exc, run)}")
    source_id = run.source.quiet_id() if run.quiet_record and mode == "change" else None
    problem = source_id and desired_pack.remember(
        run.state, source_id, run.root, run.identity, now.desired, now.report, partial)
    if problem:
        now.report = failed_with(now.report, problem)


def decide_mode(run: Run, node: NodeConfig | None) -> tuple[Mode, str | None]:
    """The run's mode and what decided it: the run's own (a command, agent.toml or a flag)
    overrides the node's policy. A run refused before the node compiled changes nothing,
    so it reads as an audit."""
    if run.mode is not None:
        return run.mode, run.mode_from
    if node is None:
        return "audit", None
    return node.policy.mode, node.policy.mode_from


Step = Callable[[RunState], None]
STEPS: tuple[Step, ...] = (take_lock, set_aside_bad_state, gather_facts, quiet_cycle,
                           read_source, compile_config, wait_for_rollout, render_files,
                           plan_and_apply)
# A source may fall back from these (the quiet cycle is where a `run` fetches and chooses).
_REFUSABLE = (quiet_cycle, read_source, compile_config, wait_for_rollout, render_files)


def perform(run: Run) -> report.RunReport:
    """Take the steps of one run and record it; always returns a report (a refused one
    too) once the node lock is held. Raises when the run could not start: `RetryLater`
    for a lock held elsewhere, `UsageError` for directories that cannot be used."""
    now = RunState(run, RunClock(started=run.clock()))
    try:
        _take(now, STEPS)
    except (ReconcilerError, OSError) as exc:
        if now.lock is None:
            raise
        mode, mode_from = decide_mode(run, now.config)
        now.report = refuse(run.node, mode, run.root, run.source.commit, _error(exc, run),
                            now.clock, run.ceiling)
        now.report.mode_from = mode_from
        if isinstance(exc, RenderStopped) or run.should_stop():
            now.report = report.interrupted(now.report, run.stopped_by() or signal.SIGTERM)
    finally:
        if now.lock is not None:
            try:
                if now.report is not None:
                    _record(now)
            finally:
                now.lock.release()
    assert now.report is not None
    if run.publish is not None:
        run.publish(now.report)  # fleet/publish.py: never raises, never changes the report
    return now.report


def _take(now: RunState, steps: tuple[Step, ...]) -> None:
    """Each step in order until one has the report (the quiet cycle may); a refusal in a
    step the source may fall back from starts over from the source with the commit it
    falls back to."""
    position = 0
    while position < len(steps) and now.report is None:
        step = steps[position]
        try:
            step(now)
        except ReconcilerError as exc:
            # A stop request may be what broke the step (a helper process killed by the
            # same Ctrl-C): that is never remembered as a refusal of the commit.
            if step not in _REFUSABLE or not isinstance(exc, Refused) or now.run.should_stop() \
                    or not now.run.source.fall_back(exc):
                raise
            position = steps.index(read_source)
            continue
        position += 1


def _error(exc: ReconcilerError | OSError, run: Run) -> ReconcilerError:
    if isinstance(exc, ReconcilerError):
        return exc
    # The state directory or the config repo could not be read or written.
    return Failed([Problem(exc.strerror or str(exc), str(exc.filename or run.state))])


def _record(now: RunState) -> None:
    assert now.report is not None
    run = now.run
    if now.notes:
        now.report = now.report.model_copy(update={"notes": [*now.notes, *now.report.notes]})
    source = run.source.describe()
    if source is not None:
        now.report.source = source
        if source.refused is not None and now.report.result != "refused":
            # The node went on with its last good commit: the run still says it refused.
            now.report = now.report.model_copy(update={
                "exit_code": now.report.exit_code | report.EXIT_REFUSED,
                "problems": [*now.report.problems, f"source refused: {source.refused}"]})
    if run.recorder is not None:
        managed = now.desired.files() if now.desired is not None else None
        now.report = run.recorder.record(now.report, managed, now.as_rendered)
        if run.shown is not None:
            _keep_repeat(now, run.shown)


def _keep_repeat(now: RunState, shown: Callable[[report.RunReport], repeat.Printed]) -> None:
    """Keep a recorded audit of drifted paths for the next audit that finds the same
    (record/repeat.py); any other run leaves nothing to repeat. A record that cannot be
    kept costs the next audit its full plan, nothing else."""
    done, state = now.report, now.run.state
    assert done is not None
    with contextlib.suppress(OSError, ValueError):
        if now.drifted is not None and now.config is not None and done.mode == "audit" \
                and now.config.policy.window is None and done.result not in UNSUCCESSFUL \
                and not (done.notes or done.problems or done.source):
            repeat.keep(state, now.drifted, shown(done))
        else:
            repeat.drop(state)
