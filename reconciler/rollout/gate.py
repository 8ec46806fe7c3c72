"""The node's side of a rollout: before a run moves to a new config commit, read the
fleet's published reports and hold the node on its last good commit while earlier
waves have not taken the commit, failed it, or are still soaking.

Holding back is a normal state, not an error: the run enforces the commit it already
had and its report says `waiting: …` (or `halted at wave …`). A tip that carries the
trailer `Rollout: immediate` in a commit whose signature verified skips the gate (the
emergency path: intent, signed). When the reports cannot be read at all, the node
waits too: a rollout that cannot be observed is not a rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from reconciler.agent.settings import AgentConfig
from reconciler.compile.inventory import Fleet
from reconciler.fleet.publish import REPORTS, Target
from reconciler.git import Git
from reconciler.source.choice import GitSource

IMMEDIATE = "immediate"  # `Rollout: immediate`, the emergency trailer
FLEET_CACHE = "fleet"  # inside the state directory's reports/: the fleet's reports, fetched


def reached_from(git: Git, target: str) -> Callable[[str], bool]:
    """Whether a commit is `target` or descends from it, asked of `git` once per commit."""
    known: dict[str, bool] = {target: True}

    def reached(commit: str) -> bool:
        if commit not in known:
            known[commit] = git.run("merge-base", "--is-ancestor", target, commit).ok
        return known[commit]

    return reached


def trailer(git: Git, commit: str) -> str | None:
    """The `Rollout:` trailer of `commit`'s message (None without one)."""
    done = git.run("log", "-1", "--format=%(trailers:key=Rollout,valueonly,separator=%x2C)",
                   "--end-of-options", commit)
    value = done.out.strip().lower() if done.ok else ""
    return value or None


def hold_back(settings: AgentConfig, source: GitSource, now: Callable[[], datetime],
              fleet: Fleet) -> bool:
    """Hold the node on its last good commit when the rollout says it must wait; True
    when the source moved back (the run then reads that commit instead)."""
    rollout = fleet.rollout
    target = source.commit
    if rollout is None or not source.trying_tip or target is None:
        return False
    position = rollout.wave_of(settings.node)
    if not position:
        return False  # the first wave, or a node the fleet does not have (compile says so)
    # Only a node of a later wave reads the fleet's reports (and builds their models).
    from reconciler.fleet import read
    from reconciler.rollout.progress import progress, verdict

    git = source.cache.git
    note = ""
    if trailer(git, target) == IMMEDIATE:
        if source.signed_by is not None:
            return False
        note = " (Rollout: immediate ignored: the commit is not signed by an allowed signer)"
    target_url = Target.of(settings).urls[0]
    cache = Path(settings.state_dir) / REPORTS / FLEET_CACHE
    reading = read.read([target_url], cache=cache, timeout=settings.fetch_timeout)
    if not reading.entries and reading.warnings:
        return source.keep(f"waiting: cannot read the fleet's reports "
                           f"({'; '.join(reading.warnings)})")
    reports = {entry.node: entry.report for entry in reading.entries}
    waves = progress(rollout, reports, reached_from(git, target))
    decided = verdict(rollout, waves, position, now())
    if decided.state == "go":
        return False
    text = decided.message if decided.state == "halted" else f"waiting: {decided.message}"
    return source.keep(text + note)
