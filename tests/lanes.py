"""How the xdist workers share the suite: whole test modules, heaviest first.

xdist's work stealing hands each worker an equal count of tests in collection order and
lets an idle worker take the back half of a busy one's queue. Test modules differ a
hundredfold in cost (a browser, real daemons, plans of the 800-node example), so the
worker that drew them ended the run alone while the others idled, and a stolen half of
a module set up its module fixtures (a browser, a node image) a second time.

Here each module goes whole to the worker with the least measured work so far, heaviest
module first (longest-processing-time scheduling), so every worker's queue starts with
its long modules and ends with short ones: what a finished worker steals at the end is
a tail of quick tests. The seconds each module took come from `module_seconds.json`
(`scripts/test.sh --record-module-seconds` rewrites it); a module it does not list
counts as its tests times the median test.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import WorkStealingScheduling

SECONDS = Path(__file__).with_name("module_seconds.json")


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def lanes(collection: Sequence[str], count: int,
          seconds: Mapping[str, float]) -> list[list[int]]:
    """Indexes into `collection` for each of `count` workers: whole modules, each given to
    the worker with the least work so far, heaviest first."""
    modules: dict[str, list[int]] = defaultdict(list)
    for index, nodeid in enumerate(collection):
        modules[module_of(nodeid)].append(index)
    known = [seconds[m] / len(tests) for m, tests in modules.items() if seconds.get(m)]
    per_test = statistics.median(known) if known else 1.0
    weight = {m: seconds.get(m) or per_test * len(tests) for m, tests in modules.items()}
    loads = [0.0] * count
    chosen: list[list[int]] = [[] for _ in range(count)]
    for module in sorted(modules, key=lambda m: (-weight[m], m)):
        lane = loads.index(min(loads))
        chosen[lane].extend(modules[module])
        loads[lane] += weight[module]
    return chosen


def recorded_seconds() -> dict[str, float]:
    try:
        data = json.loads(SECONDS.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


class ModuleLanes(WorkStealingScheduling):
    """Work stealing that starts from `lanes` instead of equal slices of the collection."""

    collection: list[str] | None

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.seconds = recorded_seconds()

    def schedule(self) -> None:
        if self.collection is not None:
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        collection: list[str] = next(iter(self.node2collection.values()))
        self.collection = collection
        nodes = list(self.node2pending)
        for node, lane in zip(nodes, lanes(collection, len(nodes), self.seconds),
                              strict=True):
            if lane:
                self.node2pending[node].extend(lane)
                node.send_runtest_some(lane)


class SecondsRecorder:
    """Sums each module's setup, call and teardown time over a run and writes them to
    `module_seconds.json`, if the run was the whole suite and every test passed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = session.config
        whole = (config.args_source is pytest.Config.ArgsSource.TESTPATHS
                 and not config.option.keyword and not config.option.markexpr)
        if exitstatus == 0 and whole:
            SECONDS.write_text(json.dumps({m: round(s, 1) for m, s in sorted(
                self.seconds.items())}, indent=1) + "\n")
