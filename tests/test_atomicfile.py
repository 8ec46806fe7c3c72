"""reconciler's own files are replaced atomically, privately by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.atomicfile import write_atomic, write_atomic_all


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "last-run.json"
    target.write_text('{"old": true}')
    write_atomic(target, b'{"new": true}\n')
    assert json.loads(target.read_text()) == {"new": True}
    assert [p.name for p in tmp_path.iterdir()] == ["last-run.json"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_write_honours_the_mode_for_files_others_read(tmp_path: Path) -> None:
    target = tmp_path / "reconciler.prom"
    write_atomic(target, b"metric 1\n", mode=0o644)
    assert target.stat().st_mode & 0o777 == 0o644


def test_write_creates_a_private_directory(tmp_path: Path) -> None:
    target = tmp_path / "state" / "applied.json"
    write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert target.parent.stat().st_mode & 0o777 == 0o700


def test_files_written_together_each_hold_their_content_and_mode(tmp_path: Path) -> None:
    (tmp_path / "last-run.json").write_text("old")
    other = tmp_path / "metrics" / "reconciler.prom"

    write_atomic_all([(tmp_path / "last-run.json", b"new\n", 0o600), (other, b"metric 1\n", 0o644),
               (tmp_path / "last-success.json", b"{}", 0o600)])

    assert (tmp_path / "last-run.json").read_bytes() == b"new\n"
    assert other.read_bytes() == b"metric 1\n" and other.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last-run.json", "last-success.json", "metrics"]


def test_files_written_together_replace_none_when_one_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("old")
    (tmp_path / "blocked").write_text("a file, not a directory")

    with pytest.raises(OSError):
        write_atomic_all([(tmp_path / "a", b"new", 0o600),
                          (tmp_path / "blocked" / "b", b"new", 0o600)])

    assert (tmp_path / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "blocked"], "no temp file left"
