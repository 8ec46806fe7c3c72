"""The fleet's `<policy mode=...>` decides whether `run` changes a node; agent.toml's
`mode` and `--mode` override it, and the report, `status` and `explain` say which won."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import reconciler
from cycle_support import BASE_FILES, FLEET, NODE, Node

from reconciler.record.report import EXIT_CHANGES

pytestmark = pytest.mark.usefixtures("isolated_git")

AUDITED = FLEET.replace(
    "</fleet>", f'  <node name="{NODE}"><policy mode="audit"/></node>\n</fleet>')


@pytest.fixture
def node(tmp_path: Path) -> Node:
    audited = Node(tmp_path)
    audited.push({**BASE_FILES, "fleet.xml": AUDITED}, "web-01 is audit-only")
    return audited


def _policy_line() -> int:
    return next(number for number, line in enumerate(AUDITED.splitlines(), start=1)
                if 'mode="audit"' in line)


def test_a_node_the_fleet_declares_audit_only_is_not_changed_by_run(node: Node) -> None:
    done = node.cli("run", "--format", "json")

    assert done.code == EXIT_CHANGES, done.err
    assert not (node.root / "etc/x").exists()
    report = json.loads(done.out)
    assert report["mode"] == "audit"
    assert report["result"] == "pending"
    assert report["mode_from"] == f"the fleet's policy at fleet.xml:{_policy_line()}"


def test_the_text_report_and_status_say_the_fleet_policy_set_the_mode(node: Node) -> None:
    done = node.cli("run")

    assert f"audit (mode set by the fleet's policy at fleet.xml:{_policy_line()})" in done.out
    status = node.cli("status")
    assert f"(audit mode, set by the fleet's policy at fleet.xml:{_policy_line()})" in status.out


def test_agent_toml_mode_overrides_the_fleet_policy(node: Node) -> None:
    node.write_config(mode="change")

    done = node.cli("run", "--format", "json")

    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"
    assert json.loads(done.out)["mode_from"] == str(node.config)


def test_the_mode_flag_overrides_agent_toml(node: Node) -> None:
    node.write_config(mode="audit")

    done = node.cli("run", "--mode", "change", "--format", "json")

    assert (node.root / "etc/x").exists()
    assert json.loads(done.out)["mode"] == "change"
    assert json.loads(done.out)["mode_from"] == "--mode"


def test_explain_shows_where_the_mode_comes_from(node: Node, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    from gitutil_repo import git

    git(tmp_path, "clone", "-q", node.origin.url, str(clone))

    done = reconciler(["explain", NODE, "--repo", clone])

    assert done.returncode == 0, done.stderr
    assert f"mode audit (set by the fleet's policy at fleet.xml:{_policy_line()};" in done.stdout
    other = reconciler(["explain", "web-02.shop.lab.t", "--repo", clone])
    assert "mode change (set by the built-in default;" in other.stdout
