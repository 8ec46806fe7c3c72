"""Whether a wave may move, from the other nodes' last reports alone: pure functions,
no git and no clock but the one given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.compile.nodeconfig import Origin
from reconciler.fleet.model import ConfigRef, FleetReport, ReportCounts, SourceInfo
from reconciler.rollout.model import Rollout, Wave
from reconciler.rollout.progress import progress, verdict

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HERE = Origin(path="fleet.xml", line=1)


def rollout(max_failures: int = 0) -> Rollout:
    return Rollout(timedelta(minutes=10), max_failures,
                   (Wave("canary", HERE, ("a", "b", "c")), Wave("next", HERE, ("d",))), HERE)


def report(node: str, commit: str, result: str = "changed",
           at: datetime = T0, refused: str | None = None) -> FleetReport:
    return FleetReport.model_validate({
        "node": node, "time": at, "duration_s": 1.0, "mode": "change", "result": result,
        "exit_code": 0, "ceiling": "reload", "reconciler_version": "test",
        "config": ConfigRef(commit=commit), "counts": ReportCounts(),
        "source": SourceInfo(refused=ConfigRef(commit=refused) if refused else None)})


def reached(commit: str) -> bool:
    return commit in ("new", "newer")  # "newer" descends from "new"


def test_a_wave_tolerates_max_failures_and_moves_when_the_others_are_done() -> None:
    reports = {"a": report("a", "new"), "b": report("b", "new", "failed"),
               "c": report("c", "newer", at=T0 + timedelta(minutes=5))}
    waves = progress(rollout(max_failures=1), reports, reached)
    assert (waves[0].done, [f.node for f in waves[0].failures]) == (2, ["b"])
    assert verdict(rollout(1), waves, 1, T0 + timedelta(minutes=14)).state == "waiting"
    assert verdict(rollout(1), waves, 1, T0 + timedelta(minutes=15)).state == "go"
    assert verdict(rollout(0), waves, 1, T0 + timedelta(hours=1)).message == (
        "halted at wave canary: failed on b (commit new)")


def test_a_node_on_an_older_commit_or_refusing_this_one_is_not_done() -> None:
    reports = {"a": report("a", "old"), "b": report("b", "old", refused="new"),
               "c": report("c", "new", "interrupted")}
    waves = progress(rollout(max_failures=5), reports, reached)
    assert (waves[0].done, [f.node for f in waves[0].failures]) == (0, ["b"])
    assert verdict(rollout(5), waves, 1, T0).message == "wave next waits for canary (0 of 3 done)"
