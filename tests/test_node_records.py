"""`apply` and `audit` record every run in the node's state directory, and `status`, `log`
and `check` read it with nothing but `--root` or `--state-dir` (no agent.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import reconciler
from cycle_support import BASE_FILES, NODE, Node

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A config repo's working tree (the web class of the cycle tests)."""
    node = Node(tmp_path / "origin")
    node.push(BASE_FILES)
    return node.origin.work


def _edited_node(fleet: Path, root: Path, *where: str | Path) -> None:
    """The node built under `root` by `apply`, then /etc/x edited by hand, audited."""
    reconciler(["apply", "--repo", fleet, "--node", NODE, "--root", root, *where])
    (root / "etc/x").write_text("tuned by hand\n")
    reconciler(["audit", "--repo", fleet, "--node", NODE, "--root", root, *where])


def test_status_reads_an_audit_with_only_the_root(fleet: Path, tmp_path: Path) -> None:
    root = tmp_path / "node"
    _edited_node(fleet, root)

    done = reconciler(["status", "--root", root])

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"node        {NODE} (audit mode")
    assert lines[1] == "source      a config repo's working tree or --rev (reconciler apply/audit)"
    assert any(line.startswith("last run ") and line.endswith("→ drift (exit 2)")
               for line in lines)
    assert any("1 drift" in line for line in lines if line.startswith("counts"))


def test_log_lists_the_apply_and_the_audit(fleet: Path, tmp_path: Path) -> None:
    root = tmp_path / "node"
    _edited_node(fleet, root)

    done = reconciler(["log", "--root", root])

    assert done.returncode == 0, done.stderr
    results = [line.split()[5] for line in done.stdout.splitlines()]
    assert results == ["drift", "changed"]  # newest first: the audit, then the first apply


def test_check_and_metrics_judge_the_last_audit(fleet: Path, tmp_path: Path) -> None:
    root = tmp_path / "node"
    _edited_node(fleet, root)

    done = reconciler(["check", "--root", root])

    assert done.returncode == 1, done.stdout
    assert done.stdout.startswith("RECONCILER WARNING - 1 drift (edited by hand)")
    metrics = (root / "var/lib/reconciler/reconciler.prom").read_text()
    assert 'reconciler_last_run_result{result="drift"} 1' in metrics


def test_a_state_dir_of_its_own_is_read_with_state_dir(fleet: Path, tmp_path: Path) -> None:
    root, state = tmp_path / "node", tmp_path / "state"
    _edited_node(fleet, root, "--state-dir", state)

    done = reconciler(["status", "--state-dir", state, "--format", "json"])

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert (status["node"], status["last_run"]["result"]) == (NODE, "drift")
    assert not (root / "var/lib/reconciler").exists()
