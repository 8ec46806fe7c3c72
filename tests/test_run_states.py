"""Each state a run leaves behind — drift, pending, held, failed — reported on its own in
every output (text, JSON, `log`, metrics, `check`), the worst one as the headline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cycle_support import BASE_ACTIONS, BASE_FILES, Node, web_class

from reconciler.record.report import EXIT_CHANGES, EXIT_HELD

pytestmark = pytest.mark.usefixtures("isolated_git")

# A service under a --root other than /: never started there, so always held.
WITH_SERVICE = web_class(BASE_ACTIONS + '  <service name="app" state="running"/>\n')


@pytest.fixture
def edited(tmp_path: Path) -> Node:
    """A node built once in change mode, then one managed file edited by hand."""
    node = Node(tmp_path)
    node.push({**BASE_FILES, "classes/web.xml": WITH_SERVICE})
    node.cli("run")
    (node.root / "etc/x").write_text("edited on the box\n")
    return node


def test_audit_of_a_hand_edit_headlines_drift_not_held(edited: Node) -> None:
    done = edited.cli("run", "--mode", "audit")

    assert done.code == EXIT_CHANGES | EXIT_HELD, done.err
    tally = done.out.strip().splitlines()[-1]
    assert tally.startswith("drift (exit 10): ")
    assert "1 drift (edited by hand)" in tally
    assert "1 held because --root is not /" in tally
    assert "ceiling" not in tally


def test_json_report_counts_each_state_apart(edited: Node) -> None:
    done = edited.cli("run", "--mode", "audit", "--format", "json")

    report = json.loads(done.out)
    assert report["result"] == "drift"
    counts = report["counts"]
    assert (counts["drift"], counts["pending"], counts["held"], counts["failed"]) == (1, 0, 1, 0)
    held = [c for a in report["actions"] for c in a["changes"] if c["status"] == "held"]
    assert [c["held_by"] for c in held] == ["root"]


def test_log_metrics_and_check_say_drift_and_count_each_state(edited: Node) -> None:
    edited.cli("run", "--mode", "audit")

    log = edited.cli("log", "-n", "1").out
    assert " drift " in log and "[1 drift, 1 held]" in log
    metrics = (edited.state / "reconciler.prom").read_text()
    assert 'reconciler_last_run_result{result="drift"} 1' in metrics
    assert 'reconciler_last_run_result{result="held"} 0' in metrics
    assert 'reconciler_last_run_count{state="drift"} 1' in metrics
    assert 'reconciler_last_run_count{state="held"} 1' in metrics
    check = edited.cli("check").out
    assert "1 drift (edited by hand)" in check
    assert "1 held because --root is not /" in check
    assert "ceiling" not in check
    assert "| drift=1 pending=0 held=1 failed=0 age=" in check


def test_audit_of_a_config_change_headlines_pending(edited: Node) -> None:
    (edited.root / "etc/x").write_text(f"hello from {edited.agent_config().node}\n")
    edited.push({"templates/web/x.j2": "{{ greeting }} again from {{ node.name }}\n"})

    done = edited.cli("run", "--mode", "audit", "--format", "json")

    report = json.loads(done.out)
    assert report["result"] == "pending"
    counts = report["counts"]
    assert (counts["drift"], counts["pending"], counts["held"]) == (0, 1, 1)
