"""`reconciler rollout status`: each wave's progress towards one config commit, as a
model (`--format json`) and as lines for a terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from reconciler.rollout.model import Rollout
from reconciler.rollout.progress import Verdict, WaveProgress, halt, verdict


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class FailedNode(_View):
    node: str
    commit: str


class WaveState(_View):
    """One wave: its nodes, how many ran the commit, which failed, and whether it may
    move (`moving`), waits or is halted, and why."""

    name: str
    nodes: int
    done: int
    failed: list[FailedNode]
    state: Literal["done", "moving", "waiting", "halted"]
    message: str = ""
    last_done: datetime | None = None


class RolloutStatus(_View):
    commit: str
    subject: str | None
    soak_s: float
    max_failures: int
    waves: list[WaveState]


def summarize(rollout: Rollout, commit: str, subject: str | None, waves: list[WaveProgress],
              now: datetime) -> RolloutStatus:
    """Each wave's state for `commit` at `now`."""
    states = []
    for position, wave in enumerate(waves):
        decided = verdict(rollout, waves, position, now)
        halted = halt(rollout, wave)
        if halted is not None:
            decided = Verdict("halted", halted)
        state: Literal["done", "moving", "waiting", "halted"] = (
            "done" if wave.done == wave.total else
            "moving" if decided.state == "go" else decided.state)
        states.append(WaveState(
            name=wave.wave.name, nodes=wave.total, done=wave.done,
            failed=[FailedNode(node=f.node, commit=f.commit) for f in wave.failures],
            state=state, message=decided.message, last_done=wave.last_done))
    return RolloutStatus(commit=commit, subject=subject, soak_s=rollout.soak.total_seconds(),
                         max_failures=rollout.max_failures, waves=states)


def lines(status: RolloutStatus) -> list[str]:
    """The status for a terminal: one line per wave, then its failures."""
    found = [f"rollout of {status.commit[:12]} {status.subject or ''}".rstrip()
             + f" (soak {int(status.soak_s)}s, at most {status.max_failures} failure(s) "
               "per wave)"]
    width = max(len(w.name) for w in status.waves)
    for wave in status.waves:
        why = f": {wave.message}" if wave.message and wave.state != "done" else ""
        found.append(f"  {wave.name.ljust(width)}  {wave.done:>4} of {wave.nodes:<4} done  "
                     f"{wave.state}{why}")
        found += [f"  {' ' * width}  failed on {f.node} (commit {f.commit[:12]})"
                  for f in wave.failed]
    return found
