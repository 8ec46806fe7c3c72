"""Backups of the files LocalSystem replaces or removes: by sha256 in a private directory,
never a secret without a seal, capped, and a failed backup stops the write."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.system import durable
from reconciler.system.backups import INDEX
from reconciler.system.local import LocalSystem


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "state" / "backups"


def test_replaced_file_is_backed_up_by_sha256_in_a_private_directory(
    root: Path, backups: Path
) -> None:
    system = LocalSystem(str(root), backup_dir=str(backups))
    (root / "etc" / "app.conf").write_bytes(b"original\n")
    system.write_atomic("/etc/app.conf", b"new\n", 0o644, None, None)
    digest = hashlib.sha256(b"original\n").hexdigest()
    assert (backups / digest).read_bytes() == b"original\n"
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert stat.S_IMODE((backups / digest).stat().st_mode) == 0o600
    assert system.backup("/etc/app.conf") == hashlib.sha256(b"new\n").hexdigest()
    assert system.backup("/etc/missing") is None


def test_removed_file_is_backed_up(root: Path, backups: Path) -> None:
    system = LocalSystem(str(root), backup_dir=str(backups))
    (root / "etc" / "old.conf").write_bytes(b"keep me\n")
    system.remove("/etc/old.conf")
    assert [path.read_bytes() for path in backups.iterdir()
            if path.name != INDEX] == [b"keep me\n"]


def test_secret_files_are_not_backed_up_without_a_seal(root: Path, backups: Path) -> None:
    system = LocalSystem(str(root), backup_dir=str(backups))
    (root / "etc" / "token").write_bytes(b"hunter2\n")
    system.write_atomic("/etc/token", b"hunter3\n", 0o600, None, None, secret=True)
    system.remove("/etc/token", secret=True)
    assert not backups.exists() or list(backups.iterdir()) == []


def test_backup_cap_evicts_the_oldest(root: Path, backups: Path) -> None:
    system = LocalSystem(str(root), backup_dir=str(backups), backup_limit=2)
    target = root / "etc" / "app.conf"
    saved: list[str] = []
    for age, content in enumerate([b"one\n", b"two\n"]):
        target.write_bytes(content)
        digest = system.backup("/etc/app.conf")
        assert digest is not None
        os.utime(backups / digest, (1000 + age, 1000 + age))
        saved.append(digest)
    target.write_bytes(b"three\n")
    newest = system.backup("/etc/app.conf")
    assert sorted(os.listdir(backups)) == sorted([saved[1], str(newest), INDEX])


def test_failed_backup_stops_the_write(root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    system = LocalSystem(str(root), backup_dir=str(blocker / "backups"))
    target = root / "etc" / "app.conf"
    target.write_bytes(b"original\n")
    with pytest.raises(OSError, match=r"cannot back up /etc/app\.conf before replacing it"):
        system.write_atomic("/etc/app.conf", b"new\n", 0o644, None, None)
    assert target.read_bytes() == b"original\n"


def _index_paths(backups: Path) -> list[str]:
    return [line.split('"path":"', 1)[1].split('"', 1)[0]
            for line in (backups / INDEX).read_text().splitlines()]


def test_a_file_backed_up_ahead_is_not_copied_again_when_replaced(
    root: Path, backups: Path
) -> None:
    system = LocalSystem(str(root), backup_dir=str(backups))
    for name in ("a.conf", "b.conf"):
        (root / "etc" / name).write_bytes(f"old {name}\n".encode())
    system.back_up_ahead(["/etc/a.conf", "/etc/b.conf", "/etc/missing.conf"])
    assert _index_paths(backups) == ["/etc/a.conf", "/etc/b.conf"]
    system.write_atomic("/etc/a.conf", b"new\n", 0o644, None, None)
    system.write_atomic("/etc/b.conf", b"new\n", 0o644, None, None)
    assert _index_paths(backups) == ["/etc/a.conf", "/etc/b.conf"]
    for name in ("a.conf", "b.conf"):
        digest = hashlib.sha256(f"old {name}\n".encode()).hexdigest()
        assert (backups / digest).read_bytes() == f"old {name}\n".encode()


def test_a_file_changed_after_its_backup_ahead_is_backed_up_again_when_replaced(
    root: Path, backups: Path
) -> None:
    system = LocalSystem(str(root), backup_dir=str(backups))
    target = root / "etc" / "app.conf"
    target.write_bytes(b"first\n")
    system.back_up_ahead(["/etc/app.conf"])
    target.write_bytes(b"edited meanwhile\n")
    system.write_atomic("/etc/app.conf", b"new\n", 0o644, None, None)
    assert _index_paths(backups) == ["/etc/app.conf", "/etc/app.conf"]
    digest = hashlib.sha256(b"edited meanwhile\n").hexdigest()
    assert (backups / digest).read_bytes() == b"edited meanwhile\n"


def test_backing_up_ahead_what_is_kept_already_syncs_the_index_not_the_copy_again(
    root: Path, backups: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []

    def sync_files(files: Sequence[tuple[str, int]]) -> tuple[str, OSError] | None:
        synced.extend(name for name, _ in files)  # counts, and syncs
        return durable.sync_files(files)

    monkeypatch.setattr("reconciler.system.backups.sync_files", sync_files)
    (root / "etc" / "app.conf").write_bytes(b"edited by hand\n")
    LocalSystem(str(root), backup_dir=str(backups)).back_up_ahead(["/etc/app.conf"])
    assert synced == [hashlib.sha256(b"edited by hand\n").hexdigest()]  # a new copy

    LocalSystem(str(root), backup_dir=str(backups)).back_up_ahead(["/etc/app.conf"])

    assert len(synced) == 1  # the same bytes again: kept already, only the index synced
    assert _index_paths(backups) == ["/etc/app.conf", "/etc/app.conf"]
