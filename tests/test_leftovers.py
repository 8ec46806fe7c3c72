"""Temp files of a SIGKILLed run are removed by the next run — only the names reconciler's
own writers make, next to managed paths and in the state directory — and the report says
which."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from clirun import RECONCILER
from cycle_support import BASE_ACTIONS, BASE_FILES, Node, wait_for, web_class
from gate import Gate
from node_root import with_users

KILLED_NOTE = "a temp file a killed run left behind"


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".reconciler-" in p.name)


def test_temp_file_of_a_run_killed_mid_write_is_removed_by_the_next_run(node: Node) -> None:
    # Under the root: the validate command runs confined to it, a system with its users.
    (node.root / "srv").mkdir(parents=True)
    with_users(node.root)
    gate = Gate(node.root / "srv/gate")
    marker = node.root / "srv/validating"
    gated = BASE_ACTIONS.replace(
        '<file path="/etc/x" template="web/x.j2"/>',
        '<file path="/etc/x" template="web/x.j2" validate="test -f %s &amp;&amp; '
        '{ touch /srv/validating; cat &gt;/dev/null; } &lt; /srv/gate"/>')
    node.push({**BASE_FILES, "classes/web.xml": web_class(gated)})
    process = subprocess.Popen([RECONCILER, "run", "--config", str(node.config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for(marker)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        gate.open()
    check, left = temp_files(node.root / "etc")
    assert re.fullmatch(r"\.x\.reconciler-[0-9a-f]{8}", left)
    assert re.fullmatch(r"\.reconciler-check-[0-9a-f]{8}", check)
    node.push_base("without the gate")

    report = node.run()

    assert temp_files(node.root / "etc") == []
    assert {f"removed /etc/{left}, {KILLED_NOTE}", f"removed /etc/{check}, {KILLED_NOTE}"} \
        <= set(report.notes)
    assert (node.root / "etc/x").read_text() == "hello from web-01.shop.lab.t\n"


def test_only_reconcilers_own_temp_names_are_removed(node: Node) -> None:
    node.push_base()
    node.run()
    etc = node.root / "etc"
    ours = [".x.reconciler-0123abcd", ".x.reconciler-deadbeef"]
    theirs = [".x.reconciler-0123ABCD", ".x.reconciler-0123abc", ".y.reconciler-0123abcd",
              "x.reconciler-0123abcd", ".x.swp", ".x.reconciler-0123abcd.bak"]
    for name in ours + theirs:
        (etc / name).write_text("left over\n")

    report = node.run()

    assert sorted(p.name for p in etc.iterdir() if p.name.startswith((".x", ".y", "x."))) \
        == sorted(theirs)
    assert sorted(n for n in report.notes if KILLED_NOTE in n) == [
        f"removed /etc/{name}, {KILLED_NOTE}" for name in ours]


def test_audit_never_removes_a_temp_file_on_the_node(node: Node) -> None:
    node.push_base()
    node.run()
    (node.root / "etc/.x.reconciler-0123abcd").write_text("left over\n")

    node.write_config(mode="audit")
    node.run()

    assert temp_files(node.root / "etc") == [".x.reconciler-0123abcd"]


def test_state_directory_temp_files_of_a_killed_run_are_removed(node: Node) -> None:
    node.push_base()
    node.run()
    state = node.state
    ours = [state / ".applied.json.ab_12xyz.tmp", state / ".last-run.json.0000aaaa.tmp",
            state / "backups/.backup-0123456789abcdef",
            state / "cache/templates/.templates-k2j4_9zz"]
    theirs = [state / ".applied.json.tmp", state / "notes.txt", state / ".unknown.ab_12xyz.tmp",
              state / "backups/.backup-xyz"]
    (state / "backups").mkdir(exist_ok=True)
    for path in ours + theirs:
        path.write_text("left over\n")
    (state / ".history.abcd1234").mkdir()
    (state / ".history.abcd1234/HEAD").write_text("ref: refs/heads/main\n")

    report = node.run()

    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in theirs)
    assert not (state / ".history.abcd1234").exists()
    assert sorted(n for n in report.notes if KILLED_NOTE in n) == sorted(
        f"removed {path}, {KILLED_NOTE}" for path in [*ours, state / ".history.abcd1234"])
