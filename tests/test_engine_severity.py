"""Severities: each kind's default, and an action's effective severity raised by what it
notifies. Order, ceilings, held changes and exit codes are scenarios (tests/scenarios/)."""

from __future__ import annotations

from pathlib import Path

from engine_support import desired, make_repo

from reconciler.compile.nodeconfig import Severity
from reconciler.plan.severity import effective_severity

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
