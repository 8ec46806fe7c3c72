"""Apply order (kinds refined by requires), severity ceilings, held changes and exit codes."""

from __future__ import annotations

from pathlib import Path

from engine_support import (
    NODE,
    action,
    change,
    converge_root,
    desired,
    make_repo,
    statuses,
)

from reconciler.compile.nodeconfig import Severity
from reconciler.plan.build import effective_severity, order
from reconciler.record.report import EXIT_CHANGES, EXIT_FAILED, EXIT_HELD, EXIT_IN_SYNC

MIXED = """
<service name="web" state="stopped" backend="command">
  <status>false</status><start>true</start><stop>true</stop>
</service>
<command name="build" run="true" creates="/built"/>
<symlink path="/etc/link" target="/etc/app.conf"/>
<file path="/etc/app.conf"><content>x</content></file>
<directory path="/srv"/>
<package name="reconciler-test-pkg" ensure="absent"/>
"""


def test_kinds_apply_in_order_packages_directories_files_commands_services(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, MIXED)

    ids = [a.id for a in order(desired(repo).node)]

    assert ids == ["package:reconciler-test-pkg", "directory:/srv", "symlink:/etc/link",
                   "file:/etc/app.conf", "command:build", "service:web"]


def test_requires_moves_an_action_after_what_it_needs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, """
<file path="/etc/generated.conf" requires="command:generate"><content>x</content></file>
<file path="/etc/plain.conf"><content>y</content></file>
<command name="generate" run="true" requires="directory:/srv"/>
<directory path="/srv" requires="file:/etc/plain.conf"/>
""")

    ids = [a.id for a in order(desired(repo).node)]

    assert ids == ["file:/etc/plain.conf", "directory:/srv", "command:generate",
                   "file:/etc/generated.conf"]


def test_report_lists_actions_in_apply_order(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, MIXED)

    report = converge_root(repo, tmp_path / "root", "audit")

    assert [a.id for a in report.actions] == [a.id for a in order(desired(repo).node)]


def test_default_severity_per_kind(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, MIXED)

    found = {a.kind: a.severity for a in desired(repo).node.actions}

    assert found == {"file": Severity.NONE, "symlink": Severity.NONE,
                     "directory": Severity.NONE, "package": Severity.RESTART,
                     "service": Severity.RESTART, "command": Severity.RESTART}


NOTIFYING = """
<file path="/etc/web.conf" notify="service:web"><content>new</content></file>
<file path="/etc/web-reload.conf" notify="service:web:reload"><content>new</content></file>
<command name="rebuild" run="true" refresh-only="true" severity="reboot"/>
<file path="/etc/kernel.conf" notify="command:rebuild"><content>new</content></file>
<service name="web" state="running" backend="command">
  <status>true</status><start>true</start><stop>true</stop>
</service>
"""


def test_effective_severity_includes_what_the_change_triggers(tmp_path: Path) -> None:
    node = desired(make_repo(tmp_path, NOTIFYING)).node

    found = {a.id: effective_severity(a, node) for a in node.actions}

    assert found["file:/etc/web.conf"] == Severity.RESTART
    assert found["file:/etc/web-reload.conf"] == Severity.RELOAD
    assert found["file:/etc/kernel.conf"] == Severity.REBOOT


def test_file_notifying_a_restart_is_held_with_its_notification(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, NOTIFYING, defaults='max-severity="reload"')
    root = tmp_path / "root"

    report = converge_root(repo, root, host_commands=True)

    held = change(report, "file:/etc/web.conf")
    assert (held.status, held.severity) == ("held", "restart")
    assert held.detail == "severity restart is above the ceiling reload"
    assert not (root / "etc/web.conf").exists()
    reload_only = change(report, "service:web")
    assert (reload_only.op, reload_only.notified_by) == \
        ("notify-reload", ["file:/etc/web-reload.conf"])
    assert (root / "etc/web-reload.conf").exists()
    assert report.exit_code == EXIT_CHANGES | EXIT_HELD


def test_ceiling_comes_from_fleet_defaults(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" severity="reload"><content>a</content></file>',
                     defaults='max-severity="none"')

    report = converge_root(repo, tmp_path / "root")

    assert (report.ceiling, change(report, "file:/etc/a").status) == ("none", "held")
    assert report.exit_code == EXIT_HELD


def test_class_policy_overrides_fleet_defaults(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" severity="reload"><content>a</content></file>',
                     defaults='max-severity="none"', class_policy='max-severity="reload"')

    report = converge_root(repo, tmp_path / "root")

    assert (report.ceiling, report.exit_code) == ("reload", EXIT_CHANGES)


def test_node_policy_overrides_class_policy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" severity="reload"><content>a</content></file>',
                     defaults='max-severity="reboot"', class_policy='max-severity="reload"',
                     node_policy='max-severity="none"')

    report = converge_root(repo, tmp_path / "root")

    assert (report.ceiling, report.exit_code) == ("none", EXIT_HELD)


def test_max_severity_overrides_policy_for_one_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" severity="restart"><content>a</content></file>',
                     defaults='max-severity="none"')
    root = tmp_path / "root"

    raised = converge_root(repo, root, max_severity=Severity.RESTART)

    assert (raised.ceiling, raised.exit_code) == ("restart", EXIT_CHANGES)
    assert (root / "etc/a").read_text() == "a"


def test_held_change_says_what_it_would_do(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" severity="reboot"><content>new\n</content>'
                               '</file>')
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a").write_text("old\n")

    report = converge_root(repo, root)

    held = change(report, "file:/etc/a")
    assert (held.status, held.summary) == ("held", "content changed")
    assert "-old\n+new\n" in (held.diff or "")
    assert (root / "etc/a").read_text() == "old\n"
    assert report.counts.held == 1


def test_exit_code_zero_when_in_sync(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv"/>')
    root = tmp_path / "root"
    converge_root(repo, root)

    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC
    assert converge_root(repo, root, "audit").exit_code == EXIT_IN_SYNC


def test_exit_code_combines_changed_failed_and_held(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, """
<file path="/etc/ok"><content>ok</content></file>
<file path="/etc/bad" validate="false %s"><content>bad</content></file>
<file path="/etc/big" severity="reboot"><content>big</content></file>
""")

    report = converge_root(repo, tmp_path / "root")

    assert report.exit_code == EXIT_CHANGES | EXIT_FAILED | EXIT_HELD
    assert statuses(report) == {"file:/etc/ok": "applied", "file:/etc/bad": "failed",
                                "file:/etc/big": "held"}
    assert report.result == "failed"


def test_audit_of_drift_exits_two_and_names_it_drift(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/ok"><content>ok</content></file>')

    report = converge_root(repo, tmp_path / "root", "audit")

    assert (report.exit_code, report.result) == (EXIT_CHANGES, "drift")
    assert action(report, "file:/etc/ok").status == "pending"
    assert report.node == NODE
