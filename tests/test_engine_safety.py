"""Safety end to end through apply: symlink attacks, special files, hard links, full disks.

Each attack is run through the real CLI (audit, apply, JSON and --debug output), so
"never read" is checked where it would show: no output and no backup holds the bytes.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import (
    action,
    change,
    cli_run,
    converge_root,
    json_report,
    make_repo,
    state_dir,
    tree_state,
)
from full_disk import fill, tiny_tmpfs

from reconciler.record.report import EXIT_CHANGES, EXIT_FAILED

SENSITIVE = b"root:SENSITIVE-HASH-0123456789:19000:0:99999:7:::\n"
APP = '<file path="/etc/app.conf"><content>managed\n</content></file>'


def _all_output(*runs: subprocess.CompletedProcess[str]) -> str:
    return "".join(run.stdout + run.stderr for run in runs)


def _stored_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


def test_symlink_to_a_sensitive_file_is_replaced_never_read(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, APP)
    root = tmp_path / "root"
    sensitive = tmp_path / "outside/shadow"
    sensitive.parent.mkdir()
    sensitive.write_bytes(SENSITIVE)
    sensitive.chmod(0o600)
    before = sensitive.stat()
    (root / "etc").mkdir(parents=True)
    (root / "etc/app.conf").symlink_to(sensitive)

    runs = [cli_run("audit", repo, root), cli_run("audit", repo, root, "--format", "json"),
            cli_run("apply", repo, root, "--format", "json", "--debug")]

    assert "SENSITIVE" not in _all_output(*runs)
    assert b"SENSITIVE" not in _stored_bytes(state_dir(root))
    assert sensitive.read_bytes() == SENSITIVE
    after = sensitive.stat()
    assert (after.st_mode, after.st_ino, after.st_mtime_ns) == \
        (before.st_mode, before.st_ino, before.st_mtime_ns)
    found = change(json_report(runs[2]), "file:/etc/app.conf")
    assert (found.summary, found.status) == \
        (f"replace symlink (→ {sensitive}) with a file", "applied")
    assert not (root / "etc/app.conf").is_symlink()
    assert (root / "etc/app.conf").read_text() == "managed\n"


def test_symlinked_parent_directory_fails_the_action_and_writes_nothing_outside(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, APP + '<file path="/srv/ok"><content>ok</content></file>')
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.conf").write_bytes(SENSITIVE)
    root.mkdir()
    (root / "etc").symlink_to(outside)
    before = tree_state(outside)

    done = cli_run("apply", repo, root, "--format", "json")

    report = json_report(done)
    failed = action(report, "file:/etc/app.conf")
    assert failed.status == "failed"
    assert "/etc is a symlink; refusing to follow it" in (failed.error or "")
    assert action(report, "file:/srv/ok").status == "applied"
    assert done.returncode == EXIT_CHANGES | EXIT_FAILED
    assert tree_state(outside) == before
    assert "SENSITIVE" not in _all_output(done)


def test_fifo_at_a_managed_path_is_refused_without_hanging(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, APP)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc/app.conf")

    done = cli_run("apply", repo, root, "--format", "json")

    failed = action(json_report(done), "file:/etc/app.conf")
    assert failed.error == "/etc/app.conf is a fifo, not a regular file; refusing to touch it"
    assert stat.S_ISFIFO(os.lstat(root / "etc/app.conf").st_mode)
    assert done.returncode == EXIT_FAILED


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB file system mounted at the node's /etc."""
    with tiny_tmpfs(tmp_path / "root/etc", mode="1777") as mount_point:
        yield mount_point


def test_full_disk_leaves_the_live_file_and_no_temp_file(
    tmp_path: Path, small_disk: Path
) -> None:
    big = "x" * 32768
    repo = make_repo(tmp_path, f'<file path="/etc/app.conf"><content>{big}</content></file>')
    root = tmp_path / "root"
    (small_disk / "app.conf").write_text("old\n")
    fill(small_disk)

    done = cli_run("apply", repo, root, "--format", "json")

    failed = change(json_report(done), "file:/etc/app.conf")
    assert failed.status == "failed"
    assert "No space left on device" in (failed.detail or "")
    assert done.returncode == EXIT_FAILED
    assert (small_disk / "app.conf").read_text() == "old\n"
    assert sorted(os.listdir(small_disk)) == ["app.conf", "filler"]


def test_hard_linked_target_is_replaced_not_written_in_place(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, APP)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/app.conf").write_bytes(SENSITIVE)
    os.link(root / "etc/app.conf", root / "other-name")

    converge_root(repo, root)

    assert (root / "other-name").read_bytes() == SENSITIVE
    assert (root / "etc/app.conf").read_text() == "managed\n"


def test_state_that_cannot_be_recorded_is_reported_as_a_failure(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, APP)
    root = tmp_path / "root"
    with tiny_tmpfs(tmp_path / "state", mode="1777") as state:
        fill(state)

        report = converge_root(repo, root, state_dir=state)

        assert report.exit_code == EXIT_CHANGES | EXIT_FAILED
        assert report.problems == [f"{state}: could not record what was applied: "
                                   "No space left on device"]
        assert (root / "etc/app.conf").read_text() == "managed\n"
        assert sorted(os.listdir(state)) == ["filler"]
