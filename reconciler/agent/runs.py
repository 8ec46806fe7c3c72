"""Runs as agent.toml describes them (`reconciler run` and the agent): the config remote
as source, a recorder for the node's history, the fleet's rollout gate and report
publishing around the steps of `run.py`; and what the node enforces now, read without
fetching."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reconciler.agent.settings import AgentConfig
from reconciler.compile.compiler import load_fleet
from reconciler.errors import ReconcilerError
from reconciler.facts.gather import gather_at
from reconciler.fleet import publish as fleet_publish
from reconciler.record.recorder import Recorder
from reconciler.render.budget import Budget
from reconciler.rollout import gate as rollout_gate
from reconciler.run import Desired, Run, desire
from reconciler.source.choice import GitSource, cache_of
from reconciler.source.state import SourceState
from reconciler.statedir import StateDir


@dataclass
class RunOptions:
    """How one run from agent.toml goes, beyond the settings themselves."""

    wait: float = 0.0
    allow_rewind: bool = False
    retry_refused: bool = False
    host_commands: bool | None = None
    should_stop: Callable[[], bool] = field(default=lambda: False)
    stopped_by: Callable[[], int | None] = field(default=lambda: None)  # behind should_stop
    fetch: bool = True  # False: no network, enforce the commit already in use
    only: frozenset[str] | None = None  # action ids to check (a drift-watch event)
    metrics_file: Path | None = None  # default: the state directory's
    mode_from: str = "agent.toml"  # where settings.mode came from when it is set
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # rollout soaks


def from_settings(settings: AgentConfig, options: RunOptions | None = None) -> Run:
    """The run agent.toml describes: the config remote as source, recorded in history."""
    options = options or RunOptions()
    state = StateDir(settings.state_dir)
    root = str(settings.root)
    source = GitSource(settings, state, fetch=options.fetch, allow_rewind=options.allow_rewind,
                       retry_refused=options.retry_refused, clock=options.clock)
    recorder = Recorder(state, settings.node, root, options.metrics_file,
                        partial=options.only is not None)
    gate = functools.partial(rollout_gate.hold_back, settings, source, options.clock)
    return Run(node=settings.node, mode=settings.mode, mode_from=options.mode_from,
               root=root, state=state, source=source,
               ceiling=settings.max_severity, host_commands=options.host_commands,
               wait=options.wait, should_stop=options.should_stop,
               stopped_by=options.stopped_by, only=options.only,
               recorder=recorder, identity=str(settings.identity),
               budget=Budget(cpu_seconds=settings.render_cpu,
                             memory_bytes=settings.render_memory << 20),
               rollout=gate, clock=options.clock,
               publish=functools.partial(fleet_publish.after_run, settings,
                                         partial=options.only is not None),
               quiet_record=options.only is None, quiet_check=options.only is None)


def commit_in_use(settings: AgentConfig) -> str | None:
    """The commit the node enforces now (the pin, else the last good), without fetching."""
    try:
        return SourceState.load(StateDir(settings.state_dir).source_state).in_use
    except ReconcilerError:
        return None


def desired_at(settings: AgentConfig, commit: str) -> Desired | None:
    """`commit` compiled and rendered for the node from the cache, without fetching or
    verifying again (it was verified when it became the last good); None when it no
    longer compiles or the cache lacks it."""
    state = StateDir(settings.state_dir)
    try:
        snapshot = cache_of(settings, state).open(commit)
        return desire(load_fleet(snapshot), settings.node, bytecode_dir=str(state.template_cache),
                      facts=gather_at(str(settings.root)), identity=str(settings.identity))
    except (ReconcilerError, OSError, ValueError):
        return None
