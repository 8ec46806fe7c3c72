"""A fleet of 32 simulated nodes publishes over `git daemon`; `reconciler fleet` shows
exactly what each did: the ones made to fail, hold, drift, be refused and go silent.

Four clusters of six web and two cache nodes are enough for every state to appear, twice
in one cell, beside nodes that simply changed; the counts at scale are bench_fleet.py's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fleet_support import (
    CLASSES,
    FleetNode,
    bare,
    cli,
    cli_json,
    config_origin,
    fleet_xml,
    node_names,
    push_daemon,
    wait_published,
)
from session_build import built_once

from reconciler.fleet import keys

HELD = ["cache-01.shop.c1.t", "cache-02.shop.c1.t", "cache-01.shop.c3.t"]
FAILED = ["web-05.shop.c2.t", "web-06.shop.c2.t"]
PENDING = [f"web-0{n}.shop.c3.t" for n in (3, 4, 5, 6)]  # audit mode: config not applied
REFUSED = ["web-01.shop.c4.t"]
SILENT = [f"web-0{n}.shop.c4.t" for n in (2, 3, 4, 5, 6)]
ALL = node_names(web=6, cache=2)
TOTAL = len(ALL)  # 32


@dataclass
class Fleet:
    url: str
    env: dict[str, str]
    commit: str

    def fleet(self, *args: str) -> list[str]:
        done = cli("fleet", *args, "--reports", self.url, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    def json(self, *args: str) -> object:
        return cli_json("fleet", *args, "--reports", self.url, env=self.env)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """All 32 nodes ran once and published (once in the session: the tests only read)."""
    base, built = built_once(tmp_path_factory, "fleet-status", _run_and_publish)
    with push_daemon(base / "served") as port:
        yield Fleet(f"git://127.0.0.1:{port}/reports.git",
                    {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}, built["commit"])


def _run_and_publish(base: Path) -> dict[str, str]:
    """Every node runs once (the run code in this process) and publishes to
    `base/served/reports.git` over `git daemon`; the config commit they ran."""
    policies = {name: 'max-severity="none"' for name in HELD}
    origin = config_origin(base, {"fleet.xml": fleet_xml(6, 2, policies), **CLASSES})
    commit = origin.commit({}, "nothing new yet")
    served = base / "served"
    served.mkdir()
    bare(served / "reports.git")
    signers = base / "allowed_signers"
    signers.write_text("")
    with push_daemon(served) as port:
        url = f"git://127.0.0.1:{port}/reports.git"
        nodes = []
        for name in ALL:
            settings: dict[str, Any] = {}
            if name in PENDING:
                settings["mode"] = "audit"
            if name in REFUSED:
                settings.update({"require-signed": "head", "allowed-signers": signers})
            node = FleetNode(base / "nodes", name, origin.url, url, with_key=name not in SILENT,
                             **settings)
            if name in FAILED:
                node.root.mkdir(parents=True)
                node.root.joinpath("etc").write_text("a file where /etc should be\n")
            report = node.run()
            if name in SILENT:
                node.key.parent.mkdir(parents=True, exist_ok=True)
                keys.generate(node.key, name)
                node.publish_dated(report, timedelta(hours=3))
            nodes.append(node)
        wait_published(nodes, timeout=300)
    return {"commit": commit}


def test_status_counts_every_node_by_what_it_did(published: Fleet) -> None:
    status = published.json("status", "--stale", "2h")
    assert isinstance(status, dict)
    assert status["total"] == TOTAL
    expected = {"failed": 2, "refused": 1, "silent": 5, "held": 3, "pending": 4,
                "changed": TOTAL - 15}
    assert {k: v for k, v in status["by_state"].items() if v} == expected
    assert status["newest"]["commit"] == published.commit
    assert status["newest"]["subject"] == "nothing new yet"
    assert status["newest"]["nodes"] == TOTAL - len(REFUSED)  # the refused one runs nothing
    assert sorted(r["node"] for r in status["silent"]) == SILENT
    assert [(r["commit"], r["nodes"]) for r in status["refused"]] == [(published.commit,
                                                                       REFUSED)]
    cells = {(c["cluster"], c["cls"]): c for c in status["grid"]}
    assert cells[("c2", "web")]["worst"] == "failed"
    assert cells[("c4", "web")]["worst"] == "refused"
    assert cells[("c1", "cache")]["worst"] == "held"
    assert cells[("c3", "web")]["worst"] == "pending"
    assert cells[("c1", "web")] == {"cluster": "c1", "cls": "web", "nodes": 6,
                                    "worst": "changed", "states": {"changed": 6}}


def test_status_reads_as_one_screen(published: Fleet) -> None:
    lines = published.fleet("status")
    assert lines[0].startswith("fleet: 32 nodes reporting to git://127.0.0.1:")
    assert lines[1].split() == ["2", "failed", "1", "refused", "5", "silent", "3", "held",
                                "4", "pending", "17", "changed", "(silent:", "no", "report",
                                "for", "2h", "0m)"]
    assert any(line.startswith(f"newest config {published.commit[:12]} nothing new yet")
               and line.endswith("on 31 of 32 nodes (96%)") for line in lines)
    assert "clusters by classes (worst state: nodes in it/all nodes)" in lines
    assert any(line.split()[:5] == ["c2", "changed", "2/2", "failed", "2/6"] for line in lines)
    silent_at = lines.index("silent (no report for 2h 0m)")
    assert [line.split()[0] for line in lines[silent_at + 1 : silent_at + 6]] == SILENT


@pytest.mark.parametrize(("args", "expected"), [
    (("--result", "failed"), FAILED),
    (("--result", "held"), sorted(HELD)),
    (("--result", "pending"), PENDING),
    (("--result", "stale"), SILENT),
    (("--result", "refused"), REFUSED),
    (("--result", "held", "--cluster", "c1"), ["cache-01.shop.c1.t", "cache-02.shop.c1.t"]),
    (("--class", "cache", "--cluster", "c4", "--product", "shop"),
     ["cache-01.shop.c4.t", "cache-02.shop.c4.t"]),
])
def test_nodes_filters_by_state_class_product_and_cluster(
    published: Fleet, args: tuple[str, ...], expected: list[str],
) -> None:
    rows = published.json("nodes", *args)
    assert isinstance(rows, list)
    assert [r["node"] for r in rows] == expected
    assert [line.split()[0] for line in published.fleet("nodes", *args)] == expected


def test_nodes_by_commit_leaves_out_the_node_that_refused_it(published: Fleet) -> None:
    rows = published.json("nodes", "--commit", published.commit[:10])
    assert isinstance(rows, list)
    assert len(rows) == TOTAL - 1 and REFUSED[0] not in {r["node"] for r in rows}


def test_show_gives_a_held_node_its_held_change_and_history(published: Fleet) -> None:
    lines = published.fleet("show", "cache-01.shop.c1.t")
    assert "state       held" in lines
    assert any(line.split()[:4] == ["held", "reload", "file:/etc/cache.conf:", "create"]
               and "above the ceiling none" in line for line in lines), lines
    assert "history (1 reports)" in lines
    shown = published.json("show", "web-05.shop.c2.t")
    assert isinstance(shown, dict)
    assert shown["report"]["result"] == "failed"
    assert shown["report"]["items"][0]["status"] == "failed"


def test_show_of_a_node_that_never_reported_says_so(published: Fleet) -> None:
    done = cli("fleet", "show", "web-99.shop.c1.t", "--reports", published.url,
               env=published.env)
    assert done.returncode == 1
    assert done.stderr == "error: no report from 'web-99.shop.c1.t' (32 nodes have reported)\n"


def test_json_output_is_one_document(published: Fleet) -> None:
    done = cli("fleet", "status", "--format", "json", "--reports", published.url,
               env=published.env)
    assert json.loads(done.stdout)["total"] == TOTAL
