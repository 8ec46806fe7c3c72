"""A quiet `apply` or `audit` is recorded in the state directory like a full run in sync:
`status`, `check`, `log` and the metrics see it, with nothing but `--root` to go on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import reconciler
from test_quiet_cycle import NODE, args, full, make_repo

from reconciler.entry import quiet_run
from reconciler.record.report import RunReport

STATE = "var/lib/reconciler"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def root(tmp_path: Path, repo: Path) -> Path:
    """A node after a full apply (changed), then a full audit (in sync): settled."""
    path = tmp_path / "node"
    path.mkdir()
    assert full(repo, path) == 2
    assert full(repo, path, "audit") == 0
    return path


def last_run(root: Path) -> RunReport:
    return RunReport.model_validate_json((root / STATE / "last-run.json").read_bytes())


def test_a_quiet_audit_is_the_last_run_status_shows(repo: Path, root: Path) -> None:
    before = last_run(root)
    assert quiet_run(args(repo, root, "audit")) == 0

    after = last_run(root)
    done = reconciler(["status", "--root", root])

    assert after.started > before.started
    assert (after.mode, after.result, after.exit_code) == ("audit", "in-sync", 0)
    assert after.counts == before.counts
    assert after.config_commit == before.config_commit
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"node        {NODE} (audit mode, by reconciler audit)"
    assert "→ in-sync (exit 0)" in done.stdout
    assert "counts      4 in sync, 0 applied" in done.stdout


def test_a_quiet_apply_reads_as_a_full_one_in_sync(repo: Path, root: Path) -> None:
    assert full(repo, root) == 0
    full_run = last_run(root).model_dump(mode="json")
    assert quiet_run(args(repo, root)) == 0

    quiet = last_run(root).model_dump(mode="json")

    assert quiet["started"] > full_run["started"]
    different = {name for name in full_run if quiet[name] != full_run[name]}
    # The quiet run lists no action one by one, and gathered no facts.
    assert different <= {"started", "duration_s", "actions", "facts"}
    assert (quiet["mode"], quiet["result"]) == ("change", "in-sync")


def test_check_and_the_metrics_judge_the_quiet_run(repo: Path, root: Path) -> None:
    with open(root / "etc/app/a.conf", "a") as handle:
        handle.write("# hand edit\n")
    assert full(repo, root, "audit") == 2
    assert reconciler(["check", "--root", root]).returncode == 1
    assert full(repo, root) == 2

    assert quiet_run(args(repo, root, "audit")) == 0

    done = reconciler(["check", "--root", root])
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("RECONCILER OK")
    metrics = (root / STATE / "reconciler.prom").read_text()
    assert 'reconciler_last_run_result{result="in-sync"} 1' in metrics
    assert 'reconciler_last_run_count{state="in_sync"} 4' in metrics
    assert 'mode="audit"' in metrics
    success = json.loads((root / STATE / "last-success.json").read_text())
    assert success["time"] == last_run(root).started.isoformat()


def test_log_after_a_quiet_run_lists_the_runs_a_full_one_would(repo: Path, root: Path) -> None:
    logged = reconciler(["log", "--root", root]).stdout

    assert quiet_run(args(repo, root)) == 0

    done = reconciler(["log", "--root", root])
    assert done.returncode == 0, done.stderr
    assert done.stdout == logged
    assert [line.split()[5] for line in done.stdout.splitlines()] == ["changed"]
