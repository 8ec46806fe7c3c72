"""The System wrappers: ReadOnlySystem refuses every write and lets reads through,
LoggingSystem logs each call but never a file's content or a validation's output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from node_root import with_users
from system_support import snapshot

from reconciler.system.interface import System, UnsafePath, ValidationFailed, WriteRefused
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import LoggingSystem, ReadOnlySystem

WRITE_CALLS: dict[str, Callable[[System], object]] = {
    "write_atomic": lambda s: s.write_atomic("/etc/app.conf", b"x", 0o644, None, None),
    "chmod": lambda s: s.chmod("/etc/app.conf", 0o600),
    "chown": lambda s: s.chown("/etc/app.conf", 0, 0),
    "mkdir": lambda s: s.mkdir("/etc/new", 0o755, None, None),
    "symlink": lambda s: s.symlink("/etc/link", "/etc/app.conf"),
    "remove": lambda s: s.remove("/etc/app.conf"),
    "run": lambda s: s.run('touch "$RECONCILER_ROOT/ran"'),
}


@pytest.mark.parametrize("call", sorted(WRITE_CALLS))
def test_read_only_system_refuses_every_write(system: LocalSystem, root: Path, call: str) -> None:
    (root / "etc" / "app.conf").write_bytes(b"live\n")
    before = snapshot(root)
    audit: System = ReadOnlySystem(system)
    with pytest.raises(WriteRefused, match=f"^{call} .*read-only"):
        WRITE_CALLS[call](audit)
    assert snapshot(root) == before


def test_read_only_system_lets_reads_and_queries_through(system: LocalSystem, root: Path) -> None:
    (root / "etc" / "app.conf").write_bytes(b"live\n")
    audit: System = ReadOnlySystem(system)
    assert audit.read("/etc/app.conf") == b"live\n"
    found = audit.lstat("/etc/app.conf")
    assert found is not None and found.kind == "file"
    assert audit.listdir("/etc") == ["app.conf"]
    assert audit.user_id("root") == 0
    assert audit.host_path("/etc") == str(root / "etc")
    assert audit.run("echo query", mutates=False).stdout == "query\n"
    assert audit.root == str(root)


def test_logging_system_logs_each_call_but_never_content(system: LocalSystem) -> None:
    lines: list[str] = []
    logged: System = LoggingSystem(system, lines.append)
    logged.write_atomic("/etc/app.conf", b"password=hunter2\n", 0o600, None, None)
    assert logged.read("/etc/app.conf") == b"password=hunter2\n"
    logged.run("echo hunter2", mutates=False)
    with pytest.raises(UnsafePath):
        logged.read("relative")
    assert len(lines) == 4
    assert lines[0].startswith("write_atomic /etc/app.conf (17 bytes, mode 0600")
    assert lines[1].startswith("read /etc/app.conf -> 17 bytes (")
    assert lines[2].startswith("run (query) echo hunter2 -> exit 0 (")
    assert "failed: UnsafePath" in lines[3]
    assert all(line.endswith(" ms)") for line in lines)
    assert not any("hunter2" in line for line in lines[:2])
    assert "hunter2" not in lines[2].split(" -> ")[1]


def test_logging_system_hides_validation_output(system: LocalSystem, root: Path) -> None:
    with_users(root)
    lines: list[str] = []
    logged = LoggingSystem(system, lines.append)
    with pytest.raises(ValidationFailed):
        logged.write_atomic(
            "/etc/app.conf", b"hunter2", 0o600, None, None, validate="sh -c 'cat $1; false' -- %s"
        )
    assert lines == [lines[0]]
    assert "failed: ValidationFailed" in lines[0]
    assert "hunter2" not in lines[0]
