"""reconciler's own files are replaced atomically, privately by default."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.atomicfile import write_atomic


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
