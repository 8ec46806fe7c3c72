"""Command actions: guards, refresh-only, timeouts, and what a failure does to the rest."""

from __future__ import annotations

import os
import time
from pathlib import Path

from engine_support import action, change, converge_root, make_repo, statuses
from svc_support import process_alive

from reconciler.record.report import EXIT_CHANGES, EXIT_FAILED, EXIT_IN_SYNC


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_creates_guard_skips_the_command_once_its_file_exists(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="init" run="echo ran >> ran; touch made" '
                               'creates="/made"/>')
    root = tmp_path / "root"

    first = converge_root(repo, root, host_commands=True)
    second = converge_root(repo, root, host_commands=True)

    assert change(first, "command:init").summary == "run: echo ran >> ran; touch made " \
                                                    "(/made is missing)"
    assert second.exit_code == EXIT_IN_SYNC
    assert _count(root / "ran") == 1


def test_unless_guard_that_succeeds_prevents_the_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="c" run="touch ran" unless="test -e done"/>')
    root = tmp_path / "root"
    root.mkdir()
    (root / "done").touch()

    report = converge_root(repo, root, host_commands=True)

    assert report.exit_code == EXIT_IN_SYNC
    assert not (root / "ran").exists()


def test_onlyif_guard_that_fails_prevents_the_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="c" run="touch ran" onlyif="test -e wanted"/>')
    root = tmp_path / "root"

    first = converge_root(repo, root, host_commands=True)
    (root / "wanted").touch()
    second = converge_root(repo, root, host_commands=True)

    assert first.exit_code == EXIT_IN_SYNC
    assert change(second, "command:c").summary == "run: touch ran (onlyif exited 0)"
    assert (root / "ran").exists()


def test_guards_run_in_audit_mode_but_the_command_does_not(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="c" run="touch ran" '
                               'unless="echo u >> guards; false" onlyif="echo o >> guards"/>')
    root = tmp_path / "root"

    report = converge_root(repo, root, "audit", host_commands=True)

    assert change(report, "command:c").status == "pending"
    assert (root / "guards").read_text() == "u\no\n"
    assert not (root / "ran").exists()


def test_command_env_and_cwd_are_used(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="c" run="echo $GREETING > out" cwd="/work" '
                               'creates="/work/out"><env name="GREETING">hi</env></command>')
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)

    converge_root(repo, root, host_commands=True)

    assert (root / "work/out").read_text() == "hi\n"


def test_refresh_only_command_runs_only_when_notified(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, """
<file path="/etc/a.conf" notify="command:reindex"><content>a</content></file>
<file path="/etc/b.conf" notify="command:reindex"><content>b</content></file>
<command name="reindex" run="echo x >> runs" refresh-only="true" severity="none"/>
""")
    root = tmp_path / "root"

    first = converge_root(repo, root, host_commands=True)
    second = converge_root(repo, root, host_commands=True)

    assert change(first, "command:reindex").notified_by == ["file:/etc/a.conf",
                                                            "file:/etc/b.conf"]
    assert second.exit_code == EXIT_IN_SYNC
    assert _count(root / "runs") == 1


def test_notified_command_whose_guard_also_fires_runs_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, """
<file path="/etc/a.conf" notify="command:c"><content>a</content></file>
<command name="c" run="echo x >> runs" creates="/never" severity="none"/>
""")
    root = tmp_path / "root"

    report = converge_root(repo, root, host_commands=True)

    assert [c.status for c in action(report, "command:c").changes] == ["applied", "skipped"]
    assert _count(root / "runs") == 1


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="slow" run="sleep 60 &amp; echo $! > child; '
                               'sleep 60" timeout="1"/>')
    root = tmp_path / "root"

    started = time.monotonic()
    report = converge_root(repo, root, host_commands=True)

    assert time.monotonic() - started < 10
    assert report.exit_code & EXIT_FAILED
    assert "timed out after 1s" in (change(report, "command:slow").detail or "")
    child = int((root / "child").read_text())
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child)


def test_failure_skips_dependents_and_independent_actions_go_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, """
<command name="fail" run="echo oops >&amp;2; exit 3"/>
<file path="/etc/needs-fail" requires="command:fail"><content>x</content></file>
<file path="/etc/needs-needs" requires="file:/etc/needs-fail"><content>x</content></file>
<file path="/etc/independent"><content>x</content></file>
""")
    root = tmp_path / "root"

    report = converge_root(repo, root, host_commands=True)

    assert statuses(report) == {"file:/etc/needs-fail": "skipped",
                                "file:/etc/needs-needs": "skipped",
                                "file:/etc/independent": "applied",
                                "command:fail": "failed"}
    assert change(report, "command:fail").detail == "exited 3: oops"
    assert change(report, "file:/etc/needs-fail").detail == "requires command:fail which failed"
    assert change(report, "file:/etc/needs-needs").detail == \
        "requires file:/etc/needs-fail which was skipped"
    assert not (root / "etc/needs-fail").exists()
    assert report.exit_code == EXIT_CHANGES | EXIT_FAILED


def test_commands_are_held_when_the_root_is_not_the_host(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="c" run="touch /tmp/never-run-by-tests" '
                               'unless="false"/>')
    root = tmp_path / "root"

    report = converge_root(repo, root)

    found = change(report, "command:c")
    assert found.status == "held"
    assert found.detail == "runs on the host; not run because --root is not /"
    assert action(report, "command:c").notes == ["guards not evaluated: --root is not /"]
    assert not os.path.exists("/tmp/never-run-by-tests")


def test_guard_that_times_out_fails_the_action_instead_of_deciding(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="c" run="touch ran" unless="sleep 30" timeout="1"/>'
                               '<file path="/etc/other"><content>x</content></file>')
    root = tmp_path / "root"

    report = converge_root(repo, root, host_commands=True)

    assert action(report, "command:c").error == \
        "unless guard timed out after 1s (process group killed)"
    assert statuses(report) == {"file:/etc/other": "applied", "command:c": "failed"}
    assert not (root / "ran").exists()
