"""Bad days end in a report, not a traceback: a state file or history repository that
cannot be read is set aside (renamed with a timestamp, kept) and the run carries on from
a fresh one, saying so in its notes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from clirun import RECONCILER
from configrepo import BASIC, Workspace, class_xml
from cycle_support import NODE, Node
from full_disk import fill, tiny_tmpfs
from gitutil_repo import git

from reconciler.atomicfile import set_aside
from reconciler.record.report import EXIT_CHANGES, EXIT_FAILED

STAMP = r"\.bad-\d{8}T\d{6}Z"
HELLO = f"hello from {NODE}\n"
WEB = "web-01.tickets.chi1.sa"  # the node of configrepo.BASIC


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def set_aside_in(directory: Path, name: str) -> list[Path]:
    return [p for p in directory.iterdir() if re.fullmatch(re.escape(name) + STAMP, p.name)]


def test_truncated_applied_json_is_set_aside_and_the_run_carries_on(node: Node) -> None:
    node.push_base()
    node.run()
    whole = (node.state / "applied.json").read_bytes()
    (node.state / "applied.json").write_bytes(whole[: len(whole) // 2])
    (node.root / "etc/x").write_text("edited by hand\n")

    report = node.run()

    [moved] = set_aside_in(node.state, "applied.json")
    assert moved.read_bytes() == whole[: len(whole) // 2]
    assert report.notes == [f"the last-applied state could not be read: {node.state}/"
                            f"applied.json set aside as {moved.name}, carrying on from a "
                            f"fresh one"]
    assert report.result == "changed" and (node.root / "etc/x").read_text() == HELLO
    assert json.loads((node.state / "applied.json").read_bytes())["paths"]
    assert node.last_run()["notes"] == report.notes


def test_garbage_source_state_is_set_aside_and_the_run_carries_on(node: Node) -> None:
    first = node.push_base()
    node.run()
    (node.state / "source-state.json").write_bytes(b"\x00\xffnot json at all")

    report = node.run()

    [moved] = set_aside_in(node.state, "source-state.json")
    assert moved.read_bytes() == b"\x00\xffnot json at all"
    assert report.notes[0].startswith("the source state (last good and refused commits, "
                                      "pin) could not be read")
    assert report.result == "in-sync" and report.config_commit == first
    assert node.source_state()["last_good"] == first


def test_garbage_applied_json_through_the_cli_is_a_note_not_an_error(node: Node) -> None:
    node.push_base()
    node.state.mkdir()
    (node.state / "applied.json").write_text("{ torn")

    done = node.cli("run")

    assert done.code == 2, done
    assert "Traceback" not in done.err
    assert "note: the last-applied state could not be read" in done.out


@pytest.mark.parametrize("damage", ["ref", "objects", "file"])
def test_corrupt_history_repository_is_set_aside_and_a_new_one_starts(
    node: Node, damage: str
) -> None:
    node.push_base()
    node.run()
    if damage == "ref":
        (node.history / "refs/heads/main").write_text("0" * 40 + "\n")
    elif damage == "objects":
        for pack in (node.history / "objects/pack").glob("*.pack"):
            pack.write_bytes(b"garbage")
    else:
        git(node.history, "gc", "--quiet")
        old = node.history.rename(node.tmp / "old-history")
        node.history.write_text("not a repository\n")
        assert old.exists()
    (node.root / "etc/x").write_text("edited by hand\n")

    report = node.run()

    [moved] = set_aside_in(node.state, "history")
    assert report.result == "changed", report.problems
    assert report.notes == [f"the history repository could not be read: {node.history} set "
                            f"aside as {moved.name}, carrying on from a fresh one"]
    assert len(node.history_commits()) == 1
    assert (node.root / "etc/x").read_text() == HELLO


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` bind-mounted read-only onto itself (skipped where mounting is not allowed)."""
    steps = [["mount", "--bind", str(directory), str(directory)],
             ["mount", "-o", "remount,bind,ro", str(directory)]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=False)
            pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_a_sound_history_that_cannot_be_written_fails_the_run_and_is_kept(node: Node) -> None:
    node.push_base()
    node.run()
    (node.root / "etc/x").write_text("edited by hand\n")
    before = node.history_commits()

    with read_only(node.history):
        report = node.run()

    assert (node.root / "etc/x").read_text() == HELLO
    assert (report.result, report.exit_code) == ("failed", EXIT_CHANGES | EXIT_FAILED)
    assert any("could not record the run" in problem for problem in report.problems)
    assert node.last_run()["problems"] == report.problems
    assert set_aside_in(node.state, "history") == [] and node.history_commits() == before


def test_set_aside_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    for round_ in range(3):
        (tmp_path / "applied.json").write_text(f"bad {round_}")
        set_aside(tmp_path / "applied.json")

    kept = sorted(p.read_text() for p in tmp_path.iterdir())
    assert kept == ["bad 0", "bad 1", "bad 2"]


# ---------------------------------------------------------------- Ctrl-C


INTERRUPTING_GIT = """#!/bin/sh
# git, except that listing a tree once the marker exists delivers a Ctrl-C: to the
# reconciler process that ran it, and to itself (it dies of it, as a git would).
if [ -e "$INTERRUPT_MARKER" ]; then
  for arg; do
    if [ "$arg" = ls-tree ]; then rm -f "$INTERRUPT_MARKER"; kill -INT $PPID; kill -INT $$; fi
  done
fi
exec {git} "$@"
"""


def test_ctrl_c_while_reading_a_new_tip_never_refuses_it(node: Node) -> None:
    node.push_base()
    node.run()
    tip = node.push({"templates/web/x.j2": "hello again\n"})
    wrapper = node.tmp / "bin/git"
    wrapper.parent.mkdir()
    wrapper.write_text(INTERRUPTING_GIT.format(git=shutil.which("git")))
    wrapper.chmod(0o755)
    marker = node.tmp / "interrupt-now"
    marker.touch()
    env = {**os.environ, "PATH": f"{wrapper.parent}:{os.environ['PATH']}",
           "INTERRUPT_MARKER": str(marker)}

    done = subprocess.run([RECONCILER, "run", "--config", str(node.config)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)

    assert not marker.exists(), "the tip was never read"
    assert done.returncode == 130, done
    assert "Traceback" not in done.stderr
    assert node.source_state().get("refused") is None
    assert node.last_run()["result"] == "interrupted"
    assert node.run().config_commit == tip
    assert (node.root / "etc/x").read_text() == "hello again\n"


# ---------------------------------------------------------------- a full state file system


FULL_DISK_FILES = {**BASIC, "classes/base.xml": class_xml(
    "base", '  <file path="/etc/motd" template="base/motd.j2"/>\n'
            '  <file path="/etc/new.conf"><content>new\n</content></file>\n')}


def test_full_state_file_system_ends_in_a_report_and_heals_what_needs_no_backup(
    ws: Workspace,
) -> None:
    repo = ws.make_repo(FULL_DISK_FILES)
    root = ws.tmp / "root"
    apply = ("apply", "--repo", repo, "--node", WEB, "--root", root, "--format", "json")
    with tiny_tmpfs(ws.tmp / "state", size="2m") as state:  # room for apply's history
        ws.cli(*apply, "--state-dir", state)
        (root / "etc/motd").write_text("edited by hand\n")
        (root / "etc/new.conf").unlink()
        ws.write(repo, {"classes/base.xml": FULL_DISK_FILES["classes/base.xml"].replace(
            "new\n", "newer\n")})  # so the last-applied state has something new to record
        ws.commit(repo)
        filler = fill(state)

        done = ws.cli(*apply, "--state-dir", state)

        assert "Traceback" not in done.err
        report = json.loads(done.out)
        assert report["exit_code"] == done.code == 2 | 4 | 8  # applied, failed, held package
        assert (root / "etc/new.conf").read_text() == "newer\n"
        motd = next(a for a in report["actions"] if a["id"] == "file:/etc/motd")
        assert "cannot back up /etc/motd before replacing it, so it is left as it is: No space " \
               "left on device" in motd["changes"][0]["detail"]
        assert (root / "etc/motd").read_text() == "edited by hand\n"
        # apply records its run too: the history, metrics and last-run.json say so as well.
        assert report["problems"][0] == f"{state}: could not record what was applied: No " \
                                        f"space left on device"
        assert all("No space left on device" in problem or "Out of diskspace" in problem
                   for problem in report["problems"]), report["problems"]
        assert not list((state / "history").glob("fast_import_crash_*"))

        filler.unlink()
        again = ws.cli(*apply, "--state-dir", state)

        assert json.loads(again.out)["exit_code"] == 2 | 8, json.loads(again.out)["problems"]
        assert (root / "etc/motd").read_text() == f"hello from {WEB}\n"


def test_full_state_file_system_during_a_run_from_the_remote_ends_in_a_report(
    node: Node,
) -> None:
    node.push_base()
    with tiny_tmpfs(node.state, size="2m"):
        node.run()
        (node.root / "etc/x").write_text("edited by hand\n")
        (node.root / "etc/app/app.conf").unlink()
        fill(node.state)

        done = node.cli("run", "--format", "json")

        assert "Traceback" not in done.err
        report = json.loads(done.out)
        assert report["result"] == "failed" and done.code & 4, done
        assert (node.root / "etc/app/app.conf").read_text() == "workers = 4\n"
        assert (node.root / "etc/x").read_text() == "edited by hand\n"
        assert any("No space left on device" in problem for problem in report["problems"])
