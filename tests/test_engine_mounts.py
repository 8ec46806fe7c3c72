"""Mount actions with the real mount, umount and findmnt: a tmpfs mounted on a mount point
under a temporary root (--host-commands), where the machine lets this process mount."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import action, converge_root, make_repo

from reconciler.record.report import EXIT_IN_SYNC


def _mounted(point: Path) -> str | None:
    """The options of what is mounted on `point`, or None."""
    done = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", "--mountpoint", str(point)],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A root whose mount points are unmounted again after the test, whatever happened;
    skipped where this process may not mount a tmpfs (no CAP_SYS_ADMIN)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                           capture_output=True, text=True, check=False)
    if tried.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {tried.stderr.strip()}")
    subprocess.run(["umount", str(probe)], check=True)
    node = tmp_path / "root"
    (node / "etc").mkdir(parents=True)
    (node / "etc/fstab").write_text("proc /proc proc defaults 0 0\n")
    yield node
    while _mounted(node / "srv/scratch") is not None:
        subprocess.run(["umount", str(node / "srv/scratch")], check=True)


SCRATCH = '<mount path="/srv/scratch" device="tmpfs" fstype="tmpfs" options="{options}" ' \
          'state="{state}"/>'


def test_a_tmpfs_is_mounted_on_its_point_under_the_root(root: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, SCRATCH.format(options="size=1m,nodev", state="mounted"))

    report = converge_root(repo, root, host_commands=True)

    assert [(c.op, c.severity) for c in action(report, "mount:/srv/scratch").changes] == \
        [("fstab", "none"), ("mount", "restart")]
    assert "nodev" in (_mounted(root / "srv/scratch") or "")
    assert "tmpfs\t/srv/scratch\ttmpfs\tsize=1m,nodev" in (root / "etc/fstab").read_text()
    assert converge_root(repo, root, host_commands=True).exit_code == EXIT_IN_SYNC


def test_new_options_remount_the_filesystem_in_place(root: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, SCRATCH.format(options="size=1m", state="mounted"))
    converge_root(repo, root, host_commands=True)
    (root / "srv/scratch/kept").write_text("still here\n")
    repo.set_class(SCRATCH.format(options="size=2m,noexec", state="mounted"))

    report = converge_root(repo, root, host_commands=True)

    ops = [c.op for c in action(report, "mount:/srv/scratch").changes]
    assert ops == ["fstab", "remount"]
    assert "noexec" in (_mounted(root / "srv/scratch") or "")
    assert (root / "srv/scratch/kept").read_text() == "still here\n", "remounted, not replaced"


def test_a_remount_held_by_the_ceiling_is_done_by_a_later_run(root: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, SCRATCH.format(options="size=1m", state="mounted"))
    converge_root(repo, root, host_commands=True)
    repo.set_class(SCRATCH.format(options="size=1m,ro", state="mounted"))
    repo.set_fleet(defaults='max-severity="reload"')

    held = converge_root(repo, root, host_commands=True)
    repo.set_fleet(defaults='max-severity="restart"')
    later = converge_root(repo, root, host_commands=True)

    assert [(c.op, c.status) for c in action(held, "mount:/srv/scratch").changes] == \
        [("fstab", "applied"), ("remount", "held")]
    assert [(c.op, c.status) for c in action(later, "mount:/srv/scratch").changes] == \
        [("remount", "applied")]
    assert "ro" in (_mounted(root / "srv/scratch") or "").split(",")


def test_unmounted_state_unmounts_and_keeps_the_entry(root: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, SCRATCH.format(options="size=1m", state="mounted"))
    converge_root(repo, root, host_commands=True)
    repo.set_class(SCRATCH.format(options="size=1m", state="unmounted"))

    report = converge_root(repo, root, host_commands=True)

    assert [c.op for c in action(report, "mount:/srv/scratch").changes] == ["umount"]
    assert _mounted(root / "srv/scratch") is None
    assert "/srv/scratch" in (root / "etc/fstab").read_text()
