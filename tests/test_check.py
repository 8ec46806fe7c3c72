"""`reconciler check`: the Nagios verdict on each result state, exact lines and exit codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agent_support import NODE, agent_env, run_report
from clirun import reconciler

from reconciler.agent.nagios import NodeState, Status, Thresholds, evaluate, read_state
from reconciler.record.report import RunReport
from reconciler.source.state import SourceState
from reconciler.statedir import StateDir

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
MINUTE_AGO = NOW - timedelta(seconds=60)  # with the 0.5 s duration: finished 59 s ago
LIMITS = Thresholds(interval=300, warn_intervals=3, crit_intervals=6)  # 15 min, 30 min
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FRESH = SourceState(last_good=COMMIT, last_good_at=NOW - timedelta(days=3))


def verdict(report: RunReport, source: SourceState = FRESH) -> tuple[Status, str]:
    found = evaluate(NodeState(report, source), NOW, LIMITS)
    return found.status, found.line


def test_in_sync_and_fresh_is_ok() -> None:
    assert verdict(run_report("in-sync", MINUTE_AGO, in_sync=4)) == (
        Status.OK,
        "RECONCILER OK - in-sync at 0123456789ab, last run 59s ago "
        "| drift=0 pending=0 held=0 failed=0 age=59s")


def test_changes_applied_are_ok() -> None:
    report = run_report("changed", MINUTE_AGO, [("/etc/a", "applied", "none", "pending")],
                        applied=1)
    assert verdict(report) == (
        Status.OK,
        "RECONCILER OK - changed at 0123456789ab, last run 59s ago "
        "| drift=0 pending=0 held=0 failed=0 age=59s")


def test_held_drift_is_a_warning() -> None:
    report = run_report("held", MINUTE_AGO, [("/etc/a", "held", "restart", "pending")], held=1)
    assert verdict(report) == (
        Status.WARNING,
        "RECONCILER WARNING - 1 held above the ceiling reload "
        "| drift=0 pending=0 held=1 failed=0 age=59s")


def test_edited_by_hand_is_a_warning() -> None:
    report = run_report("drift", MINUTE_AGO, [("/etc/a", "pending", "none", "edited-by-hand")],
                        mode="audit", edited_by_hand=1, drift=1)
    assert verdict(report) == (
        Status.WARNING,
        "RECONCILER WARNING - 1 drift (edited by hand) "
        "| drift=1 pending=0 held=0 failed=0 age=59s")


def test_pending_drift_in_audit_mode_is_a_warning() -> None:
    report = run_report("pending", MINUTE_AGO, [("/etc/a", "pending", "none", "pending")],
                        mode="audit", pending=1)
    assert verdict(report) == (
        Status.WARNING,
        "RECONCILER WARNING - 1 pending | drift=0 pending=1 held=0 failed=0 age=59s")


def test_source_stale_for_longer_than_warn_age_is_a_warning() -> None:
    report = run_report("in-sync", MINUTE_AGO, stale="source unavailable (timeout)")
    source = SourceState(last_good=COMMIT, last_good_at=NOW - timedelta(hours=2))
    assert verdict(report, source) == (
        Status.WARNING,
        "RECONCILER WARNING - source stale for 2h: source unavailable (timeout) "
        "| drift=0 pending=0 held=0 failed=0 age=59s")


def test_source_stale_for_less_than_warn_age_is_ok() -> None:
    report = run_report("in-sync", MINUTE_AGO, stale="source unavailable (timeout)")
    source = SourceState(last_good=COMMIT, last_good_at=NOW - timedelta(minutes=5))
    assert verdict(report, source)[0] is Status.OK


def test_run_older_than_warn_age_is_a_warning() -> None:
    report = run_report("in-sync", NOW - timedelta(minutes=20))
    assert verdict(report) == (
        Status.WARNING,
        "RECONCILER WARNING - last run 19m ago (warning over 15m) "
        "| drift=0 pending=0 held=0 failed=0 age=1199s")


def test_interrupted_run_is_a_warning() -> None:
    report = run_report("interrupted", MINUTE_AGO, [("/etc/a", "skipped", "none", "pending")],
                        skipped=1)
    assert verdict(report) == (
        Status.WARNING,
        "RECONCILER WARNING - last run interrupted | drift=0 pending=0 held=0 failed=0 age=59s")


def test_failed_action_is_critical() -> None:
    report = run_report("failed", MINUTE_AGO, [("/etc/a", "failed", "none", "pending")],
                        failed=1)
    assert verdict(report) == (
        Status.CRITICAL,
        "RECONCILER CRITICAL - 1 failed (file:/etc/a) | drift=0 pending=0 held=0 failed=1 age=59s")


def test_refused_run_is_critical() -> None:
    report = run_report("refused", MINUTE_AGO, problems=["classes/web.xml:3: unknown class"])
    assert verdict(report) == (
        Status.CRITICAL,
        "RECONCILER CRITICAL - run refused: classes/web.xml:3: unknown class "
        "| drift=0 pending=0 held=0 failed=0 age=59s")


def test_refused_tip_while_enforcing_the_last_good_is_critical() -> None:
    report = run_report("in-sync", MINUTE_AGO, stale="tip fedcba987654 refused: unsigned")
    source = FRESH.mark_refused("fedcba9876543210fedcba9876543210fedcba98", "unsigned", NOW)
    assert verdict(report, source) == (
        Status.CRITICAL,
        "RECONCILER CRITICAL - commit fedcba987654 refused: unsigned; source stale for 3d: "
        "tip fedcba987654 refused: unsigned | drift=0 pending=0 held=0 failed=0 age=59s")


def test_run_older_than_crit_age_is_critical() -> None:
    report = run_report("in-sync", NOW - timedelta(hours=2))
    assert verdict(report) == (
        Status.CRITICAL,
        "RECONCILER CRITICAL - last run 119m ago (critical over 30m) "
        "| drift=0 pending=0 held=0 failed=0 age=7199s")


def test_critical_reasons_come_before_warnings() -> None:
    report = run_report("failed", MINUTE_AGO, [("/etc/a", "failed", "none", "pending"),
                                               ("/etc/b", "held", "reboot", "pending")],
                        failed=1, held=1)
    assert verdict(report) == (
        Status.CRITICAL,
        "RECONCILER CRITICAL - 1 failed (file:/etc/a); 1 held above the ceiling reload "
        "| drift=0 pending=0 held=1 failed=1 age=59s")


def test_no_state_is_unknown(tmp_path: Path) -> None:
    found = evaluate(read_state(StateDir(tmp_path)), NOW, LIMITS)
    assert (found.status, found.line) == (
        Status.UNKNOWN, f"RECONCILER UNKNOWN - no last run under {tmp_path}")


def test_corrupt_last_run_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "last-run.json").write_text("{not json")
    found = evaluate(read_state(StateDir(tmp_path)), NOW, LIMITS)
    assert found.status is Status.UNKNOWN
    assert found.line.startswith(f"RECONCILER UNKNOWN - unreadable {tmp_path}/last-run.json: ")


def test_unreadable_source_state_still_judges_the_run_and_warns(tmp_path: Path) -> None:
    (tmp_path / "last-run.json").write_text(run_report("in-sync", MINUTE_AGO).model_dump_json())
    (tmp_path / "source-state.json").write_text("garbage")
    found = evaluate(read_state(StateDir(tmp_path)), NOW, LIMITS)
    assert found.status is Status.WARNING
    assert f"unreadable {tmp_path}/source-state.json" in found.line


def check_cli(state_dir: Path, home: Path, *args: str) -> tuple[int, str]:
    done = reconciler(["check", "--remote", "file:///nowhere.git", "--node", NODE,
                       "--state-dir", state_dir, "--interval", "300", *args], env=agent_env(home))
    assert done.stderr == ""
    return done.returncode, done.stdout


@pytest.mark.parametrize(("report", "code", "line"), [
    (run_report("in-sync", in_sync=4), 0,
     r"RECONCILER OK - in-sync at 0123456789ab, last run 10m ago \| drift=0 pending=0 held=0 "
     r"failed=0 age=60[0-9]s"),
    (run_report("held", changes=[("/etc/a", "held", "restart", "pending")], held=1), 1,
     r"RECONCILER WARNING - 1 held above the ceiling reload \| drift=0 pending=0 held=1 failed=0 "
     r"age=60[0-9]s"),
    (run_report("failed", changes=[("/etc/a", "failed", "none", "pending")], failed=1), 2,
     r"RECONCILER CRITICAL - 1 failed \(file:/etc/a\) \| drift=0 pending=0 held=0 failed=1 "
     r"age=60[0-9]s"),
], ids=["ok", "warning", "critical"])
def test_check_command_prints_one_line_and_exits_as_nagios_expects(
    tmp_path: Path, report: RunReport, code: int, line: str
) -> None:
    report.started = datetime.now(UTC) - timedelta(minutes=10, seconds=1)
    (tmp_path / "last-run.json").write_text(report.model_dump_json())
    returned, out = check_cli(tmp_path, tmp_path)
    assert returned == code
    assert re.fullmatch(line + "\n", out), out


def test_check_command_without_state_is_unknown(tmp_path: Path) -> None:
    assert check_cli(tmp_path / "none", tmp_path) == (
        3, f"RECONCILER UNKNOWN - no last run under {tmp_path / 'none'}\n")


def test_check_command_thresholds_are_flags(tmp_path: Path) -> None:
    report = run_report("in-sync", datetime.now(UTC) - timedelta(minutes=10))
    (tmp_path / "last-run.json").write_text(report.model_dump_json())
    code, out = check_cli(tmp_path, tmp_path, "--warn-age", "1", "--crit-age", "1.5")
    assert code == 2
    assert re.match(r"RECONCILER CRITICAL - last run (9|10)m ago \(critical over 7m\) \|", out)


def test_check_command_with_bad_settings_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('remote = "file:///x.git"\nmode = "sideways"\n')
    done = reconciler(["check", "--config", config], env=agent_env(tmp_path))
    assert done.returncode == 3
    assert done.stdout.startswith(f"RECONCILER UNKNOWN - {config}:2: mode: ")
