"""The pipeline for one node: compile → render → plan → apply | report.

`converge` is shared by `audit`, `apply` and `run`: audit is the same code running
against a system that refuses writes, not a second code path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from reconciler import statedir as paths
from reconciler.apply.executor import execute
from reconciler.compile.compiler import compile_node
from reconciler.compile.inventory import Fleet
from reconciler.compile.nodeconfig import NodeConfig, Severity
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.plan.build import build
from reconciler.plan.probe import Context
from reconciler.record import applied as state
from reconciler.record import report
from reconciler.render.renderer import RenderedFile, Renderer, render_node
from reconciler.system.interface import NotDurable, System
from reconciler.system.wrappers import ReadOnlySystem

Mode = Literal["audit", "change"]


@dataclass(frozen=True)
class Desired:
    """The desired state of one node at one commit: compiled and rendered."""

    node: NodeConfig
    rendered: dict[str, list[RenderedFile]]
    fleet: Fleet


def desire(
    fleet: Fleet, node_name: str, renderer: Renderer | None = None,
    bytecode_dir: str | None = None,
) -> Desired:
    """Compile and render one node, refusing the whole commit on any problem."""
    node = compile_node(fleet, node_name)
    renderer = renderer or Renderer(fleet, bytecode_dir)
    files, problems = render_node(renderer, node)
    renderer.save_cache()
    if problems:
        raise ConfigError(problems)
    rendered: dict[str, list[RenderedFile]] = {}
    for item in files:
        rendered.setdefault(item.action.id, []).append(item)
    return Desired(node, rendered, fleet)


def ceiling_for(node: NodeConfig, override: Severity | None) -> Severity:
    return override if override is not None else node.policy.max_severity


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
    state_dir: str,
    mode: Mode,
    max_severity: Severity | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    only: frozenset[str] | None = None,
    clock: RunClock | None = None,
) -> report.RunReport:
    """Plan one node against the live system; in change mode apply and record what was done."""
    clock = clock or RunClock()
    node = desired.node
    ceiling = ceiling_for(node, max_severity)
    previous = state.load(state_dir)
    live = system if mode == "change" else ReadOnlySystem(system)
    ctx = Context(
        system=live,
        node=node,
        rendered=desired.rendered,
        applied=previous.paths,
        commit=desired.fleet.revision,
        read_repo=desired.fleet.snapshot.read,
        ceiling=ceiling,
    )
    problems: list[str] = []
    try:
        with live.caching():
            plan = build(ctx, only)
            outcome = execute(ctx, plan, previous, mode == "change", should_stop)
    except NotDurable as exc:
        # Raised only on leaving `caching`, once every change was made and reported.
        problems.append(f"{exc.filename}: changes made here may not survive a crash: "
                        f"{exc.strerror or exc}")
    if mode == "change":
        try:
            state.save(state_dir, outcome.applied)
        except OSError as exc:
            problems.append(f"{state_dir}: could not record what was applied: "
                            f"{exc.strerror or exc}")
    done = report.build(node.name, mode, system.root, desired.fleet.revision, str(ceiling),
                        clock.started, clock.elapsed(), outcome)
    if problems:
        done = done.model_copy(update={"problems": problems, "result": "failed",
                                       "exit_code": done.exit_code | report.EXIT_FAILED})
    return done


def refuse(
    node: str, mode: Mode, root: str, commit: str | None, error: ReconcilerError,
    clock: RunClock, ceiling: Severity | None = None,
) -> report.RunReport:
    """The report of a run that changed nothing because its input was refused."""
    return report.refused(node, mode, root, commit, str(ceiling) if ceiling is not None else "",
                          clock.started, clock.elapsed(),
                          [str(p) if p.path else p.message for p in error.problems])


def default_state_dir(root: str) -> str:
    """`var/lib/reconciler` under the root, so a demo root is self-contained."""
    return os.path.join(root, paths.STATE_DIR.lstrip("/"))
