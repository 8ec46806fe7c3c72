"""Fake node roots for tests whose checks must run in them."""

from __future__ import annotations

from pathlib import Path


def with_users(root: Path) -> Path:
    """Give `root` its users (`etc/passwd`): a system its checks and validate commands run
    in. A root without is still being built, and is not checked."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root
