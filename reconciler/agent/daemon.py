"""The always-running agent: full cycles on a splayed timer, drift healed as it happens.

One thread does all the work, so a timer cycle, a drift-watch audit and a manual
trigger (SIGUSR1) never overlap in this process; the node lock keeps them apart from
any other `reconciler` process. Everything else only posts to the loop's inbox:
watchdog's threads post event paths, signal handlers post the signal (a
`queue.SimpleQueue` put is safe in a signal handler). Idle, the loop sleeps in one
blocking `get` until the next cycle is due: no polling of files.

Signals: SIGTERM/SIGINT finish the current atomic step, record, release the lock and
exit 0; SIGHUP re-reads agent.toml; SIGUSR1 runs a full cycle now.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Literal, TextIO

from reconciler.agent import splay
from reconciler.agent.runs import RunOptions, commit_in_use, desired_at, from_settings
from reconciler.agent.settings import AgentConfig
from reconciler.agent.watch import Debounce, DriftFilter, Watcher, WatchSet
from reconciler.compile.nodeconfig import Policy
from reconciler.errors import ReconcilerError, RetryLater
from reconciler.record import applied as applied_state
from reconciler.record.report import RunReport
from reconciler.run import perform
from reconciler.secrets.digest import ContentDigest
from reconciler.statedir import StateDir

DEFAULT_INTERVAL = 300
RETRY_BUSY = 2.0  # another process holds the node lock: try the cycle again this much later
RETRY_WATCH = 1.0  # ... or the drift-watch audit
SHOWN_PATHS = 10
DRAIN = 10_000  # inbox items taken in one go before the loop looks at its deadlines

LogFormat = Literal["text", "json"]


class EventLog:
    """One line per event on stderr (journald keeps it): `key=value` text, or JSON."""

    def __init__(self, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stderr

    def __call__(self, event: str, level: str = "info", **fields: object) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        shown = {k: v for k, v in fields.items() if v is not None}
        if self.fmt == "json":
            line = json.dumps({"time": now, "level": level, "event": event, **shown},
                              default=str)
        else:
            line = " ".join([now, level, event, *(f"{k}={_text(v)}" for k, v in shown.items())])
        self.stream.write(line + "\n")
        self.stream.flush()


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n\t') else text


def report_fields(report: RunReport) -> dict[str, object]:
    """What a log line says about a run: result, commit, the counts that are not zero."""
    counts = {k: v for k, v in report.counts.model_dump().items() if v}
    fields: dict[str, object] = {
        "result": report.result,
        "commit": (report.config_commit or "none")[:12],
        **counts,
        "duration": f"{report.duration_s:.2f}s",
    }
    if report.source is not None and report.source.stale:
        fields["stale"] = report.source.stale
    if report.source is not None and report.source.rollout:
        fields["rollout"] = report.source.rollout
    if report.problems:
        fields["problem"] = report.problems[0]
    return fields


@dataclass(frozen=True)
class Timing:
    interval: float
    splay: float
    offset: float


def _anchor(timing: Timing) -> float | None:
    """The wall clock a schedule is anchored to; none for a splay of 0 (exact timing)."""
    return time.time() if timing.splay > 0 else None


class Agent:
    """The agent loop for one node; `load` (re)reads agent.toml with the CLI flags on top."""

    def __init__(
        self,
        load: Callable[[], AgentConfig],
        log: EventLog,
        metrics_file: Path | None = None,
        host_commands: bool | None = None,
        quiet: float = 0.2,
    ) -> None:
        self._load = load
        self.cfg = load()
        self._log = log
        self._metrics_file = metrics_file
        self._host_commands = host_commands
        self._inbox: queue.SimpleQueue[tuple[str, str | int]] = queue.SimpleQueue()
        self._watcher = Watcher(lambda path: self._inbox.put(("path", path)))
        self._debounce = Debounce(quiet=quiet, longest=max(1.0, quiet * 5))
        self._filter = DriftFilter()
        self._watchset: WatchSet | None = None
        self._watch_key: tuple[str | None, str, str] | None = None
        self._policy: Policy | None = None
        self._drifted: set[str] = set()
        self._watch_retry_at = 0.0
        self._stopping = False
        self._stop_signal: int | None = None
        self._reload_wanted = False
        self._cycle_wanted: str | None = None  # why a cycle is wanted before its slot
        self._cycle_retry_at = 0.0
        self._timing = self._wanted_timing()
        self._schedule = splay.Schedule(self._timing.interval, self._timing.offset,
                                        splay.max_jitter(self._timing.interval,
                                                         self._timing.splay),
                                        time.monotonic(), _anchor(self._timing))

    # ------------------------------------------------------------------ the loop

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, self._on_signal)
        self._log("start", node=self.cfg.node, mode=self.cfg.mode or "the fleet's policy",
                  pid=os.getpid(),
                  interval=self._timing.interval, splay=self._timing.splay,
                  offset=f"{self._timing.offset:.1f}s",
                  first_cycle_in=f"{max(0.0, self._schedule.due - time.monotonic()):.1f}s")
        try:
            self._watcher.start()
        except OSError as exc:
            self._log("watch-unavailable", level="error", error=str(exc))
        self._refresh_watch()
        while not self._stopping:
            self._wait()
            if self._stopping:
                break
            if self._reload_wanted:
                self._reload()
            now = time.monotonic()
            if now >= self._schedule.due:
                self._full_cycle("timer")
            elif self._cycle_wanted is not None and now >= self._cycle_retry_at:
                self._full_cycle(self._cycle_wanted)
            if self._stopping:
                break
            now = time.monotonic()
            if self._debounce.ready(now):
                self._sift(self._debounce.take())
            if self._drifted and now >= self._watch_retry_at:
                self._watch_audit()
        self._watcher.stop()
        while True:  # log the signals that arrived while the loop was busy
            try:
                self._take(self._inbox.get_nowait())
            except queue.Empty:
                break
        self._log("stop")
        return 0

    def _wait(self) -> None:
        """Sleep until the next deadline or until something arrives; take all that did."""
        deadlines = [self._schedule.due, self._debounce.deadline()]
        if self._cycle_wanted is not None:
            deadlines.append(self._cycle_retry_at)
        if self._drifted:
            deadlines.append(self._watch_retry_at)
        wake = min(d for d in deadlines if d is not None)
        try:
            item = self._inbox.get(timeout=max(0.0, wake - time.monotonic()))
        except queue.Empty:
            return
        for _ in range(DRAIN):  # bounded, so a flood of events cannot starve the timer
            self._take(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
        self._take(item)

    def _take(self, item: tuple[str, str | int]) -> None:
        kind, value = item
        watchset = self._watchset
        if kind == "path" and isinstance(value, str):
            node_path = watchset.node_path(value) if watchset is not None else None
            if node_path is not None and watchset is not None and watchset.touched(node_path):
                self._debounce.add(node_path, time.monotonic())
        elif kind == "signal" and isinstance(value, int):
            self._log("signal", name=signal.Signals(value).name)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True
            self._stop_signal = signum
        elif signum == signal.SIGHUP:
            self._reload_wanted = True
        elif signum == signal.SIGUSR1:
            self._cycle_wanted = "signal"
            self._cycle_retry_at = 0.0
        self._inbox.put(("signal", signum))

    def _should_stop(self) -> bool:
        return self._stopping

    # ------------------------------------------------------------------ runs

    def _run(self, options: RunOptions, scope: str, **context: object) -> bool:
        """One run under the node lock; False when it must be retried soon (another process
        holds the lock). Errors are logged and count as done: the next cycle tries again."""
        try:
            report = perform(from_settings(self.cfg, options))
        except RetryLater as exc:
            self._log("busy", level="warning", scope=scope,
                      holder="; ".join(p.message for p in exc.problems))
            return False
        except ReconcilerError as exc:
            self._log("error", level="error", scope=scope, error=exc.summary())
            return True
        except OSError as exc:  # a full disk, a vanished state directory: say so, go on
            self._log("error", level="error", scope=scope, error=f"{exc.strerror or exc}: "
                      f"{exc.filename or ''}".rstrip(": "))
            return True
        refused = report.source is not None and report.source.refused is not None
        level = "error" if report.result in ("failed", "refused") or refused else (
            "warning" if report.result in ("held", "drift", "pending", "interrupted") else "info")
        self._log(scope, level=level, **context, **report_fields(report))
        return True

    def _options(self, fetch: bool = True, only: frozenset[str] | None = None) -> RunOptions:
        return RunOptions(wait=0.0, host_commands=self._host_commands,
                          should_stop=self._should_stop,
                          stopped_by=lambda: self._stop_signal, fetch=fetch, only=only,
                          metrics_file=self._metrics_file)

    def _full_cycle(self, trigger: str) -> None:
        now = time.monotonic()
        if now >= self._schedule.due:
            self._schedule.advance(now)
        self._cycle_wanted = None
        # What the watch noticed before this cycle, the cycle looks at anyway.
        noticed = self._debounce.take()
        if not self._run(self._options(), "cycle", trigger=trigger):
            self._cycle_wanted = "retry"
            self._cycle_retry_at = time.monotonic() + RETRY_BUSY
            for path in noticed:
                self._debounce.add(path, time.monotonic())
            return
        self._drifted.clear()
        self._refresh_watch()

    def _sift(self, node_paths: set[str]) -> None:
        """Keep the event paths whose managed state really moved (see watch.py)."""
        watchset = self._watchset
        if watchset is None:
            return
        touched = {managed for path in node_paths for managed in watchset.touched(path)}
        if not touched:
            return
        applied = None
        if self._mode() == "change":
            try:
                applied = applied_state.load(StateDir(self.cfg.state_dir))
            except ReconcilerError as exc:
                self._log("error", level="error", scope="watch", error=exc.summary())
        self._drifted |= self._filter.drifted(watchset, touched, applied, self._digest())

    def _look_at_new_paths(self, before: WatchSet | None, after: WatchSet) -> None:
        """In change mode, check paths as they start being watched against what reconciler
        recorded writing: an edit made before the watch began (while the agent was down,
        or between a cycle's write and the new watch) is caught now, not a cycle later."""
        if self._mode() != "change":
            return
        fresh = [p for p in after.paths if before is None or p not in before.paths
                 or before.root != after.root]
        try:
            applied = applied_state.load(StateDir(self.cfg.state_dir))
        except ReconcilerError as exc:
            self._log("error", level="error", scope="watch", error=exc.summary())
            return
        self._drifted |= self._filter.drifted(after, fresh, applied, self._digest())

    def _mode(self) -> str:
        """The mode runs take now: agent.toml's override, else the node's policy at the
        commit being watched."""
        if self.cfg.mode is not None:
            return self.cfg.mode
        return self._policy.mode if self._policy is not None else Policy().mode

    def _digest(self) -> ContentDigest:
        """How this node's records name file contents (keyed for secret files)."""
        return ContentDigest.of_state_dir(StateDir(self.cfg.state_dir))

    def _watch_audit(self) -> None:
        watchset = self._watchset
        paths = sorted(p for p in self._drifted if watchset is not None and p in watchset.paths)
        if watchset is None or not paths:
            self._drifted.clear()
            return
        shown = paths[:SHOWN_PATHS] + ([f"+{len(paths) - SHOWN_PATHS} more"]
                                       if len(paths) > SHOWN_PATHS else [])
        options = self._options(fetch=False, only=watchset.actions_of(paths))
        if not self._run(options, "watch", paths=shown):
            self._watch_retry_at = time.monotonic() + RETRY_WATCH
            return
        self._drifted.clear()
        self._refresh_watch()

    # ------------------------------------------------------------------ config and watch set

    def _wanted_timing(self) -> Timing:
        policy = self._policy
        interval = self.cfg.interval or (policy.interval if policy else DEFAULT_INTERVAL)
        spread = self.cfg.splay if self.cfg.splay is not None else (
            policy.splay if policy and policy.splay is not None else interval)
        return Timing(float(interval), float(spread),
                      splay.splay_offset(self.cfg.node, min(spread, interval)))

    def _retime(self) -> None:
        """A new interval or splay (agent.toml or the fleet policy) starts a new schedule."""
        wanted = self._wanted_timing()
        if wanted == self._timing:
            return
        self._timing = wanted
        now = time.monotonic()
        self._schedule = splay.Schedule(wanted.interval, wanted.offset,
                                        splay.max_jitter(wanted.interval, wanted.splay), now,
                                        _anchor(wanted))
        self._schedule.advance(now)
        self._log("schedule", interval=wanted.interval, splay=wanted.splay,
                  offset=f"{wanted.offset:.1f}s",
                  next_cycle_in=f"{self._schedule.due - now:.1f}s")

    def _reload(self) -> None:
        self._reload_wanted = False
        try:
            cfg = self._load()
        except ReconcilerError as exc:
            self._log("reload-failed", level="error", error=exc.summary())
            return
        changed = sorted(k for k in AgentConfig.model_fields
                         if getattr(cfg, k) != getattr(self.cfg, k))
        self.cfg = cfg
        self._log("reload", changed=changed or "nothing")
        self._refresh_watch()
        self._retime()

    def _refresh_watch(self) -> None:
        """Follow the config: the commit in use decides what is watched."""
        commit = commit_in_use(self.cfg)
        key = (commit, str(self.cfg.root), self.cfg.node)
        if key != self._watch_key:
            desired = desired_at(self.cfg, commit) if commit is not None else None
            if commit is None or desired is not None:
                before = self._watchset
                self._watch_key = key
                self._watchset = (WatchSet.from_desired(desired, str(self.cfg.root))
                                  if desired is not None else None)
                self._policy = desired.node.policy if desired is not None else None
                if self._watchset is not None:
                    self._filter.keep_only(self._watchset)
                    self._look_at_new_paths(before, self._watchset)
            else:
                self._log("watch-stale", level="warning", commit=commit[:12],
                          error="the commit in use does not compile; keeping the watch set")
        added, dropped, failed = self._watcher.follow(self._watchset)
        if failed:
            self._log("watch-failed", level="error", failed=failed[:SHOWN_PATHS])
        if added or dropped:
            self._log("watching", paths=len(self._watchset.paths) if self._watchset else 0,
                      directories=len(self._watcher.directories), added=added,
                      dropped=dropped)
        self._retime()
