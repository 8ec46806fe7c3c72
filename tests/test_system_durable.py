"""The files a run wrote are made durable all at once: by one sync of their filesystem
when the kernel holds little unwritten data, else by each file's own fsync (a
filesystem sync would wait for what other processes left unwritten); a file that cannot
be made durable is named."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.system import durable
from reconciler.system.local import LocalSystem
from reconciler.system.walk import PENDING_FILES


@pytest.fixture
def files(tmp_path: Path) -> Iterator[list[tuple[str, int]]]:
    opened = []
    for index in range(40):
        fd = os.open(tmp_path / f"f{index}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"written\n")
        opened.append((f"/etc/f{index}", fd))
    yield opened
    for _, fd in opened:
        os.close(fd)


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many filesystem syncs and file fsyncs are made (each still made)."""
    counted = {"filesystem": 0, "file": 0}
    sync_filesystem, fsync = durable.sync_filesystem, os.fsync

    def filesystem(fd: int) -> None:
        counted["filesystem"] += 1
        sync_filesystem(fd)

    def file(fd: int) -> None:
        counted["file"] += 1
        fsync(fd)

    monkeypatch.setattr(durable, "sync_filesystem", filesystem)
    monkeypatch.setattr(os, "fsync", file)
    return counted


def test_little_unwritten_makes_the_files_durable_with_one_filesystem_sync(
    files: list[tuple[str, int]], syncs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "UNWRITTEN_LIMIT", 1 << 62)

    assert durable.sync_files(files) is None

    assert syncs == {"filesystem": 1, "file": 0}


def test_much_unwritten_gives_each_file_its_own_fsync(
    files: list[tuple[str, int]], syncs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "UNWRITTEN_LIMIT", 0)

    assert durable.sync_files(files) is None

    assert syncs == {"filesystem": 0, "file": len(files)}


def test_a_file_that_cannot_be_made_durable_is_named(
    files: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "UNWRITTEN_LIMIT", 0)
    reading, writing = os.pipe()  # fsync of a pipe fails: EINVAL
    try:
        failed = durable.sync_files([*files[:5], ("/etc/pipe", reading), *files[5:]])
    finally:
        os.close(reading)
        os.close(writing)

    assert failed is not None and failed[0] == "/etc/pipe"
    assert isinstance(failed[1], OSError)


def write_many(root: Path, count: int, syncs: dict[str, int]) -> int:
    """Files written by one run under `root`; the filesystem syncs made before its end."""
    system = LocalSystem(str(root))
    with system.caching():
        for index in range(count):
            system.write_atomic(f"/etc/f{index}", b"x\n", 0o644, None, None)
        before_the_end = syncs["filesystem"]
    return before_the_end


def test_a_run_of_many_files_syncs_their_filesystem_once_at_its_end(
    tmp_path: Path, syncs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "UNWRITTEN_LIMIT", 1 << 62)
    (tmp_path / "etc").mkdir()

    assert write_many(tmp_path, 3 * PENDING_FILES + 7, syncs) == 0

    assert syncs["filesystem"] == 1
    assert len(list((tmp_path / "etc").iterdir())) == 3 * PENDING_FILES + 7


def test_a_run_of_many_files_with_much_unwritten_syncs_each_file(
    tmp_path: Path, syncs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable, "UNWRITTEN_LIMIT", 0)
    (tmp_path / "etc").mkdir()

    write_many(tmp_path, 3 * PENDING_FILES + 7, syncs)

    assert syncs["filesystem"] == 0
    assert syncs["file"] >= 3 * PENDING_FILES + 7  # each file, then the directory
