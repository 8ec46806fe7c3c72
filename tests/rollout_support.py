"""A small fleet with a rollout, its nodes sharing one reports repository, and a clock
the tests move by hand (the soak is measured against it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleet_support import FleetNode, bare, config_origin, wait_published
from gitutil_repo import Origin

from reconciler.record.report import RunReport

CANARY = "web-01.shop.c1.t"
SECOND = "web-02.shop.c1.t"
LAST = "web-01.shop.c2.t"

ROLLOUT = (f'  <rollout soak="10m" max-failures="0">\n'
           f'    <wave name="canary"><node name="{CANARY}"/></wave>\n'
           f'    <wave name="c1" cluster="c1"/>\n'
           f'  </rollout>\n')


def fleet_with_rollout(rollout: str = ROLLOUT) -> str:
    return ('<fleet domain="t">\n  <defaults><policy max-severity="reload"/></defaults>\n'
            '  <nodes class="web" product="shop" cluster="c1" count="2"/>\n'
            '  <nodes class="web" product="shop" cluster="c2" count="1"/>\n'
            f"{rollout}</fleet>\n")


def web_class(body: str = "") -> str:
    return ('<class name="web">\n  <file path="/etc/web.conf" template="web/web.conf.j2"/>\n'
            f"{body}</class>\n")


class Clock:
    """Now, as far as the rollout gate knows: the real time plus what the test skipped."""

    def __init__(self) -> None:
        self.skipped = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skipped

    def skip(self, amount: timedelta) -> None:
        self.skipped += amount


class RolloutFleet:
    """Three nodes (canary, the rest of c1, c2) over one config origin and one reports
    repository; each run publishes, and the next waits until it is pushed."""

    def __init__(self, base: Path, rollout: str = ROLLOUT, **settings: Any) -> None:
        self.origin: Origin = config_origin(base, {
            "fleet.xml": fleet_with_rollout(rollout), "classes/web.xml": web_class(),
            "templates/web/web.conf.j2": "version 1 on {{ node.name }}\n"})
        self.reports = bare(base / "reports.git")
        self.clock = Clock()
        self.nodes = {name: FleetNode(base, name, self.origin.url, f"file://{self.reports}",
                                      **settings) for name in (CANARY, SECOND, LAST)}

    def run(self, name: str, **options: Any) -> RunReport:
        node = self.nodes[name]
        report = node.run(host_commands=True, clock=self.clock, **options)
        wait_published([node])
        return report

    def commit(self, version: int, body: str = "", message: str = "change") -> str:
        return self.origin.commit({
            "classes/web.xml": web_class(body),
            "templates/web/web.conf.j2": f"version {version} on {{{{ node.name }}}}\n"},
            message)
