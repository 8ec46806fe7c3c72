"""How far a config commit has come through the rollout's waves, and whether a node of
a given wave may move to it: pure functions of the rollout, every node's last report,
which commits descend from the target, and a clock.

A node is *done* with a commit when its last report ran that commit (or a descendant)
and succeeded; it *failed* it when that report failed, or it refused the commit (a
refused or reverted commit counts against the rollout). A wave may move when every
earlier wave is done with no more than `max-failures` failures, and the soak has
passed since the last of their successful reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from reconciler.fleet.model import FleetReport
from reconciler.rollout.model import Rollout, Wave

_SUCCESS = ("in-sync", "changed", "drift", "held")


@dataclass(frozen=True)
class Failure:
    node: str
    commit: str


@dataclass(frozen=True)
class WaveProgress:
    """One wave's nodes for one commit: how many are done, which failed, and when the
    last of them succeeded."""

    wave: Wave
    done: int
    failures: tuple[Failure, ...]
    last_done: datetime | None

    @property
    def total(self) -> int:
        return len(self.wave.nodes)


@dataclass(frozen=True)
class Verdict:
    """Whether a node may move to the commit: `go`, or `waiting` / `halted` and why."""

    state: Literal["go", "waiting", "halted"]
    message: str = ""


def node_outcome(report: FleetReport | None,
                 reached: Callable[[str], bool]) -> tuple[datetime | None, Failure | None]:
    """(when it succeeded, how it failed) of one node's last report, for the target
    commit: `reached(commit)` says whether a commit is the target or descends from it."""
    if report is None:
        return None, None
    refused = report.source.refused
    if refused is not None and refused.commit is not None and reached(refused.commit):
        return None, Failure(report.node, refused.commit)
    commit = report.config.commit
    if commit is None or report.result == "refused" or not reached(commit):
        return None, None
    if report.result in ("failed", "reverted"):
        return None, Failure(report.node, commit)
    if report.result in _SUCCESS:
        return report.config_since or report.time, None
    return None, None


def progress(rollout: Rollout, reports: Mapping[str, FleetReport | None],
             reached: Callable[[str], bool]) -> list[WaveProgress]:
    """Every wave's progress towards the target commit."""
    waves = []
    for wave in rollout.waves:
        done_at: list[datetime] = []
        failures: list[Failure] = []
        for node in wave.nodes:
            when, failure = node_outcome(reports.get(node), reached)
            if when is not None:
                done_at.append(when)
            if failure is not None:
                failures.append(failure)
        waves.append(WaveProgress(wave, len(done_at), tuple(failures),
                                  max(done_at) if done_at else None))
    return waves


def halt(rollout: Rollout, wave: WaveProgress) -> str | None:
    """Why the rollout halts at `wave` (more failures than it tolerates), or None."""
    if len(wave.failures) <= rollout.max_failures:
        return None
    first = wave.failures[0]
    more = len(wave.failures) - 1
    return (f"halted at wave {wave.wave.name}: failed on {first.node} "
            f"(commit {first.commit[:12]})" + (f" and {more} more" if more else ""))


def verdict(rollout: Rollout, waves: list[WaveProgress], position: int,
            now: datetime) -> Verdict:
    """Whether the node of wave `position` may move to the target commit at `now`."""
    name = waves[position].wave.name
    for earlier in waves[:position]:
        halted = halt(rollout, earlier)
        if halted is not None:
            return Verdict("halted", halted)
    for earlier in waves[:position]:
        if earlier.done + len(earlier.failures) < earlier.total:
            return Verdict("waiting", f"wave {name} waits for {earlier.wave.name} "
                                      f"({earlier.done} of {earlier.total} done)")
    finished = [w.last_done for w in waves[:position] if w.last_done is not None]
    if finished:
        until = max(finished) + rollout.soak
        if now < until:
            return Verdict("waiting", f"wave {name} waits for the soak: "
                                      f"{waves[position - 1].wave.name} done, moving at "
                                      f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    return Verdict("go")
