"""Helpers for the LocalSystem tests (test_system*.py): a fake node root and what proves
that nothing changed or was left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def fake_root(tmp_path: Path) -> Path:
    """A fake node root with /etc in it."""
    node_root = tmp_path / "root"
    (node_root / "etc").mkdir(parents=True)
    return node_root


def leftovers(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if ".reconciler-" in name]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Contents and mode of every file below `directory`, to prove nothing changed."""
    result: dict[str, tuple[bytes, int]] = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
        result[str(path)] = (data, stat.S_IMODE(info.st_mode))
    return result
