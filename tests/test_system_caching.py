"""LocalSystem.caching: walks reused within one run, directory syncs batched, nothing leaked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.system.interface import UnsafePath
from reconciler.system.local import LocalSystem
from reconciler.system.release import HELD_LIMIT
from reconciler.system.walk import PENDING_FILES, PENDING_SYNCS, WALK_CACHE
from reconciler.system.wrappers import ReadOnlySystem


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_writes_while_caching_land_in_place_and_every_fd_is_closed_after(root: Path) -> None:
    system = LocalSystem(str(root))
    before = open_fds()

    with system.caching():
        system.mkdir("/etc/app", 0o755, None, None)
        for index in range(10):
            system.write_atomic(f"/etc/app/f{index}", b"x\n", 0o644, None, None)
        seen = system.listdir("/etc/app")

    assert seen == [f"f{index}" for index in range(10)]
    assert (root / "etc/app/f9").read_bytes() == b"x\n"
    assert open_fds() == before


def test_files_replaced_while_caching_are_let_go_of_by_the_end_and_never_too_many_at_once(
    root: Path,
) -> None:
    system = LocalSystem(str(root))
    system.mkdir("/etc/app", 0o755, None, None)
    count = HELD_LIMIT + PENDING_FILES
    for index in range(count):
        system.write_atomic(f"/etc/app/f{index}", b"old\n", 0o644, None, None)
    before, most = open_fds(), 0

    with system.caching():
        for index in range(count):
            system.write_atomic(f"/etc/app/f{index}", b"new\n", 0o644, None, None)
            most = max(most, open_fds())

    assert (root / "etc/app/f0").read_bytes() == (root / f"etc/app/f{count - 1}").read_bytes() \
        == b"new\n"
    assert open_fds() == before, "every replaced file closed, none left unnamed and open"
    # held: the replaced files, the files awaiting their sync, the walk's directories
    assert most <= before + HELD_LIMIT + PENDING_FILES + WALK_CACHE + 2


def test_a_parent_turned_symlink_before_the_next_run_is_refused(
    root: Path, tmp_path: Path
) -> None:
    system = LocalSystem(str(root))
    outside = tmp_path / "outside"
    outside.mkdir()
    with system.caching():
        system.mkdir("/etc/app", 0o755, None, None)
        system.write_atomic("/etc/app/conf", b"one\n", 0o644, None, None)
    (root / "etc/app/conf").unlink()
    (root / "etc/app").rmdir()
    (root / "etc/app").symlink_to(outside)

    with system.caching(), pytest.raises(UnsafePath, match="/etc/app is a symlink"):
        system.write_atomic("/etc/app/conf", b"two\n", 0o644, None, None)

    assert list(outside.iterdir()) == []


def test_a_symlink_planted_below_a_cached_directory_is_still_refused(
    root: Path, tmp_path: Path
) -> None:
    system = LocalSystem(str(root))
    outside = tmp_path / "outside"
    outside.mkdir()

    with system.caching():
        system.write_atomic("/etc/first", b"1\n", 0o644, None, None)  # /etc is now cached
        (root / "etc/sub").symlink_to(outside)
        with pytest.raises(UnsafePath, match="/etc/sub is a symlink"):
            system.write_atomic("/etc/sub/conf", b"2\n", 0o644, None, None)

    assert list(outside.iterdir()) == []


def test_a_directory_removed_and_recreated_in_one_run_is_walked_afresh(root: Path) -> None:
    system = LocalSystem(str(root))

    with system.caching():
        system.mkdir("/etc/app", 0o755, None, None)
        system.write_atomic("/etc/app/old", b"old\n", 0o644, None, None)
        system.remove("/etc/app/old")
        system.remove("/etc/app")
        system.mkdir("/etc/app", 0o700, None, None)
        system.write_atomic("/etc/app/new", b"new\n", 0o644, None, None)
        listed = system.listdir("/etc/app")

    assert listed == ["new"]
    assert (root / "etc/app/new").read_bytes() == b"new\n"
    assert (root / "etc/app").stat().st_mode & 0o777 == 0o700


def test_open_directories_stay_bounded_in_a_run_touching_many(root: Path) -> None:
    system = LocalSystem(str(root))
    before = open_fds()
    most = 0

    with system.caching():
        for index in range(WALK_CACHE + PENDING_SYNCS + 50):
            system.mkdir(f"/etc/d{index}", 0o755, None, None)
            system.write_atomic(f"/etc/d{index}/f", b"x\n", 0o644, None, None)
            most = max(most, open_fds() - before)

    assert most <= WALK_CACHE + PENDING_SYNCS + PENDING_FILES + 1
    assert open_fds() == before
    assert len(list((root / "etc").iterdir())) == WALK_CACHE + PENDING_SYNCS + 50


def test_audit_wrapper_caches_reads_of_the_system_it_wraps(root: Path) -> None:
    (root / "etc/app").mkdir()
    (root / "etc/app/conf").write_bytes(b"live\n")
    audit = ReadOnlySystem(LocalSystem(str(root)))
    before = open_fds()

    with audit.caching():
        first = audit.read("/etc/app/conf")
        stat = audit.lstat("/etc/app/conf")

    assert (first, stat is not None and stat.kind) == (b"live\n", "file")
    assert open_fds() == before
