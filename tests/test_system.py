"""LocalSystem's file calls against real files under tmp_path: atomic writes, symlinks and
special files refused, a full disk, the other writes and the reads. Validation, commands,
the wrappers and backups have test_system_*.py of their own."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from system_support import leftovers, snapshot

from reconciler.system.interface import UnknownName, UnsafePath
from reconciler.system.local import LocalSystem

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


@pytest.fixture
def sensitive(tmp_path: Path) -> Path:
    """A file outside the root that no write may ever reach."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "shadow"
    secret.write_bytes(b"root:$6$do-not-touch\n")
    secret.chmod(0o600)
    return secret


# -- atomic writes ------------------------------------------------------------------


def test_write_atomic_creates_file_with_mode_and_leaves_no_temp_file(
    system: LocalSystem, root: Path
) -> None:
    old_umask = os.umask(0o077)
    try:
        system.write_atomic("/etc/motd", b"hello\n", 0o644, None, None)
    finally:
        os.umask(old_umask)
    target = root / "etc" / "motd"
    assert target.read_bytes() == b"hello\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(root / "etc") == []


@as_root
def test_write_atomic_sets_owner_and_group_as_root(system: LocalSystem, root: Path) -> None:
    assert system.can_chown
    system.write_atomic("/etc/app.conf", b"x=1\n", 0o640, NOBODY, NOBODY)
    info = (root / "etc" / "app.conf").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o640)


@as_root
def test_write_atomic_keeps_existing_owner_when_none_given(system: LocalSystem, root: Path) -> None:
    target = root / "etc" / "app.conf"
    target.write_bytes(b"old\n")
    os.chown(target, NOBODY, NOBODY)
    system.write_atomic("/etc/app.conf", b"new\n", 0o600, None, None)
    info = target.stat()
    assert (info.st_uid, info.st_gid) == (NOBODY, NOBODY)
    assert target.read_bytes() == b"new\n"


@as_root
def test_write_atomic_keeps_setuid_bit_after_chown(system: LocalSystem, root: Path) -> None:
    system.write_atomic("/etc/helper", b"#!/bin/sh\n", 0o4755, NOBODY, 0)
    assert stat.S_IMODE((root / "etc" / "helper").stat().st_mode) == 0o4755


def test_rewrite_of_hard_linked_file_leaves_other_link_untouched(
    system: LocalSystem, root: Path
) -> None:
    target = root / "etc" / "hosts"
    target.write_bytes(b"original\n")
    other = root / "hosts.link"
    os.link(target, other)
    system.write_atomic("/etc/hosts", b"replaced\n", 0o644, None, None)
    assert target.read_bytes() == b"replaced\n"
    assert other.read_bytes() == b"original\n"
    assert target.stat().st_nlink == 1


def test_write_into_missing_parent_fails_naming_the_parent(system: LocalSystem, root: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"parent directory of /etc/nginx/nginx\.conf"):
        system.write_atomic("/etc/nginx/nginx.conf", b"x", 0o644, None, None)
    assert not (root / "etc" / "nginx").exists()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("etc/motd", "not absolute"),
        ("/etc/../../escape", "'..' component"),
        ("/etc/mo\0td", "NUL byte"),
    ],
    ids=["relative", "dotdot", "nul"],
)
def test_unsafe_path_spellings_are_refused(
    system: LocalSystem, tmp_path: Path, path: str, reason: str
) -> None:
    before = snapshot(tmp_path)
    with pytest.raises(UnsafePath, match=reason):
        system.write_atomic(path, b"x", 0o644, None, None)
    with pytest.raises(UnsafePath, match=reason):
        system.lstat(path)
    assert snapshot(tmp_path) == before


# -- symlinks -----------------------------------------------------------------------


def test_read_of_symlink_to_sensitive_file_is_refused(
    system: LocalSystem, root: Path, sensitive: Path
) -> None:
    (root / "etc" / "app.conf").symlink_to(sensitive)
    with pytest.raises(UnsafePath, match=r"/etc/app\.conf"):
        system.read("/etc/app.conf")


def test_write_replaces_symlink_and_leaves_its_target_untouched(
    system: LocalSystem, root: Path, sensitive: Path
) -> None:
    before = sensitive.read_bytes()
    link = root / "etc" / "app.conf"
    link.symlink_to(sensitive)
    system.write_atomic("/etc/app.conf", b"managed\n", 0o644, None, None)
    assert not link.is_symlink()
    assert link.read_bytes() == b"managed\n"
    assert sensitive.read_bytes() == before
    assert stat.S_IMODE(sensitive.stat().st_mode) == 0o600


def test_chmod_and_chown_of_symlink_are_refused(
    system: LocalSystem, root: Path, sensitive: Path
) -> None:
    (root / "etc" / "app.conf").symlink_to(sensitive)
    with pytest.raises(UnsafePath, match="symlink"):
        system.chmod("/etc/app.conf", 0o777)
    with pytest.raises(UnsafePath, match="symlink"):
        system.chown("/etc/app.conf", NOBODY, NOBODY)
    info = sensitive.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0)


def test_lstat_describes_a_symlink_without_following_it(
    system: LocalSystem, root: Path, sensitive: Path
) -> None:
    (root / "etc" / "app.conf").symlink_to(sensitive)
    found = system.lstat("/etc/app.conf")
    assert found is not None
    assert (found.kind, found.link_target) == ("symlink", str(sensitive))


SYMLINKED_PARENT_CALLS: dict[str, Callable[[LocalSystem], object]] = {
    "read": lambda s: s.read("/etc/nginx/nginx.conf"),
    "write_atomic": lambda s: s.write_atomic("/etc/nginx/nginx.conf", b"x", 0o644, None, None),
    "lstat": lambda s: s.lstat("/etc/nginx/nginx.conf"),
    "mkdir": lambda s: s.mkdir("/etc/nginx/conf.d", 0o755, None, None),
    "remove": lambda s: s.remove("/etc/nginx/nginx.conf"),
    "listdir": lambda s: s.listdir("/etc/nginx"),
    "chmod": lambda s: s.chmod("/etc/nginx/nginx.conf", 0o777),
    "symlink": lambda s: s.symlink("/etc/nginx/nginx.conf", "/tmp/x"),
}


@pytest.mark.parametrize("call", sorted(SYMLINKED_PARENT_CALLS))
def test_call_through_symlinked_parent_is_refused(
    system: LocalSystem, root: Path, sensitive: Path, call: str
) -> None:
    outside = sensitive.parent
    (outside / "nginx.conf").write_bytes(b"outside\n")
    (root / "etc" / "nginx").symlink_to(outside)
    before = snapshot(outside)
    with pytest.raises(UnsafePath, match="/etc/nginx is a symlink"):
        SYMLINKED_PARENT_CALLS[call](system)
    assert snapshot(outside) == before


# -- special files ------------------------------------------------------------------


def test_fifo_is_refused_for_read_and_write_without_hanging(
    system: LocalSystem, root: Path
) -> None:
    fifo = root / "etc" / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePath, match="fifo"):
        system.read("/etc/pipe")
    with pytest.raises(UnsafePath, match="fifo"):
        system.write_atomic("/etc/pipe", b"x", 0o644, None, None)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_directory_target_is_refused_for_read_and_write(system: LocalSystem, root: Path) -> None:
    (root / "etc" / "conf.d").mkdir()
    with pytest.raises(UnsafePath, match="directory"):
        system.read("/etc/conf.d")
    with pytest.raises(UnsafePath, match="directory"):
        system.write_atomic("/etc/conf.d", b"x", 0o644, None, None)
    assert (root / "etc" / "conf.d").is_dir()


def test_device_target_is_refused_for_read_and_write(system: LocalSystem, root: Path) -> None:
    device = root / "etc" / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("cannot create device nodes here (no CAP_MKNOD)")
    with pytest.raises(UnsafePath, match="device"):
        system.read("/etc/null")
    with pytest.raises(UnsafePath, match="device"):
        system.write_atomic("/etc/null", b"x", 0o644, None, None)
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_socket_target_is_refused_for_write(
    system: LocalSystem, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root / "etc")  # a relative bind avoids the 108-byte socket path limit
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("sock")
    try:
        with pytest.raises(UnsafePath, match="socket"):
            system.write_atomic("/etc/sock", b"x", 0o644, None, None)
    finally:
        listener.close()


# -- full disk ----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted under tmp_path (skipped where mounting is not allowed)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_write_on_full_disk_raises_no_space_and_keeps_old_content(small_disk: Path) -> None:
    (small_disk / "etc").mkdir()
    target = small_disk / "etc" / "big.conf"
    target.write_bytes(b"old content\n")
    system = LocalSystem(str(small_disk))
    with pytest.raises(OSError, match="No space left on device") as caught:
        system.write_atomic("/etc/big.conf", b"x" * 256 * 1024, 0o644, None, None)
    assert caught.value.errno == errno.ENOSPC
    assert "/etc/big.conf" in str(caught.value)
    assert target.read_bytes() == b"old content\n"
    assert leftovers(small_disk / "etc") == []


# -- other writes -------------------------------------------------------------------


@as_root
def test_mkdir_sets_mode_and_owner_ignoring_umask(system: LocalSystem, root: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        system.mkdir("/etc/conf.d", 0o2775, NOBODY, NOBODY)
    finally:
        os.umask(old_umask)
    info = (root / "etc" / "conf.d").stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o2775, NOBODY, NOBODY)


def test_mkdir_needs_an_existing_parent(system: LocalSystem, root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="parent directory"):
        system.mkdir("/etc/a/b", 0o755, None, None)
    assert not (root / "etc" / "a").exists()


@as_root
def test_chmod_and_chown_change_a_regular_file(system: LocalSystem, root: Path) -> None:
    target = root / "etc" / "app.conf"
    target.write_bytes(b"x")
    system.chmod("/etc/app.conf", 0o640)
    system.chown("/etc/app.conf", NOBODY, None)
    info = target.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, NOBODY, 0)


@as_root
def test_symlink_replaces_an_existing_link_atomically(system: LocalSystem, root: Path) -> None:
    link = root / "etc" / "current"
    link.symlink_to("/opt/v1")
    system.symlink("/etc/current", "/opt/v2", uid=NOBODY, gid=NOBODY)
    assert os.readlink(link) == "/opt/v2"
    assert link.lstat().st_uid == NOBODY
    assert leftovers(root / "etc") == []


def test_symlink_over_a_directory_is_refused(system: LocalSystem, root: Path) -> None:
    (root / "etc" / "conf.d").mkdir()
    with pytest.raises(UnsafePath, match="directory"):
        system.symlink("/etc/conf.d", "/opt/conf")
    assert (root / "etc" / "conf.d").is_dir()


def test_remove_deletes_files_links_and_empty_directories(
    system: LocalSystem, root: Path, sensitive: Path
) -> None:
    (root / "etc" / "file").write_bytes(b"x")
    (root / "etc" / "link").symlink_to(sensitive)
    (root / "etc" / "empty").mkdir()
    for name in ("file", "link", "empty"):
        system.remove(f"/etc/{name}")
    assert os.listdir(root / "etc") == []
    assert sensitive.exists()


def test_remove_refuses_a_non_empty_directory(system: LocalSystem, root: Path) -> None:
    (root / "etc" / "conf.d").mkdir()
    (root / "etc" / "conf.d" / "keep").write_bytes(b"x")
    with pytest.raises(OSError, match="non-empty directory") as caught:
        system.remove("/etc/conf.d")
    assert caught.value.errno == errno.ENOTEMPTY
    assert (root / "etc" / "conf.d" / "keep").exists()


def test_remove_of_missing_path_is_a_no_op(system: LocalSystem, root: Path) -> None:
    before = snapshot(root)
    system.remove("/etc/absent")
    system.remove("/nowhere/absent")
    assert snapshot(root) == before
    assert sorted(os.listdir(root)) == ["etc"]


# -- reads --------------------------------------------------------------------------


def test_lstat_reports_a_file_and_none_for_missing_paths(system: LocalSystem, root: Path) -> None:
    target = root / "etc" / "app.conf"
    target.write_bytes(b"12345")
    target.chmod(0o640)
    found = system.lstat("/etc/app.conf")
    assert found is not None
    assert (found.kind, found.mode, found.size, found.nlink) == ("file", 0o640, 5, 1)
    assert system.lstat("/etc/missing") is None
    assert system.lstat("/missing/parent/file") is None
    assert system.lstat("/etc/app.conf/below") is None


def test_read_honours_the_limit(system: LocalSystem, root: Path) -> None:
    (root / "etc" / "big").write_bytes(b"abcdef")
    assert system.read("/etc/big", limit=3) == b"abc"
    assert system.read("/etc/big") == b"abcdef"


def test_listdir_is_sorted_and_refuses_a_symlinked_directory(
    system: LocalSystem, root: Path, sensitive: Path
) -> None:
    for name in ("b", "a", "c"):
        (root / "etc" / name).write_bytes(b"")
    (root / "etc" / "out").symlink_to(sensitive.parent)
    assert system.listdir("/etc") == ["a", "b", "c", "out"]
    with pytest.raises(UnsafePath, match="/etc/out is a symlink"):
        system.listdir("/etc/out")


def test_names_resolve_on_the_host_and_digits_pass_through(system: LocalSystem) -> None:
    assert system.user_id("root") == 0
    assert system.group_id("root") == 0
    assert system.user_id("1234") == 1234
    assert system.group_id("4321") == 4321
    with pytest.raises(UnknownName, match="unknown user 'no-such-user-xyz'"):
        system.user_id("no-such-user-xyz")
    with pytest.raises(KeyError, match="unknown group"):
        system.group_id("no-such-group-xyz")


def test_host_path_and_host_commands_default_follow_the_root(
    system: LocalSystem, root: Path
) -> None:
    assert system.host_path("/etc/motd") == str(root / "etc" / "motd")
    assert system.host_path("/") == str(root)
    assert not system.runs_host_commands
    assert LocalSystem("/").runs_host_commands
    assert LocalSystem(str(root), host_commands=True).runs_host_commands


