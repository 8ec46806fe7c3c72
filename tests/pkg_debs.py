"""Test helpers for the package backend: real .deb files, dpkg roots and dpkg lock holders."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.system.interface import CommandResult
from reconciler.system.local import LocalSystem

TEST_PACKAGE = "reconciler-test-pkg"
TEST_FILE = "/usr/share/reconciler-test/version"


def build_deb(
    workdir: Path,
    version: str,
    *,
    name: str = TEST_PACKAGE,
    depends: str | None = None,
    postinst: str | None = None,
) -> Path:
    """Build a real .deb with dpkg-deb that installs TEST_FILE (or a per-package file)."""
    tree = workdir / f"{name}_{version}"
    control_dir = tree / "DEBIAN"
    control_dir.mkdir(parents=True)
    control = [
        f"Package: {name}",
        f"Version: {version}",
        "Architecture: all",
        "Maintainer: Reconciler Tests <tests@example.invalid>",
        "Description: reconciler package backend test",
    ]
    if depends is not None:
        control.append(f"Depends: {depends}")
    (control_dir / "control").write_text("\n".join(control) + "\n")
    if postinst is not None:
        script = control_dir / "postinst"
        script.write_text(postinst)
        script.chmod(0o755)
    installed_file = TEST_FILE if name == TEST_PACKAGE else f"/usr/share/{name}/version"
    payload = tree / installed_file.lstrip("/")
    payload.parent.mkdir(parents=True)
    payload.write_text(f"{name} {version}\n")
    deb = workdir / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def make_dpkg_root(root: Path) -> Path:
    """Initialise an empty dpkg database under `root`, as dpkg expects; return its admindir."""
    admindir = root / "var/lib/dpkg"
    for sub in ("info", "updates"):
        (admindir / sub).mkdir(parents=True)
    for name in ("status", "available"):
        (admindir / name).touch()
    return admindir


_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


class LockHolder:
    """Another process holding a real fcntl lock on a file, as dpkg does, until `release`."""

    def __init__(self, lock_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(lock_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"
        self.pid = self.process.pid

    def release(self) -> None:
        """Let go of the lock (the process exits); again is a no-op."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@contextmanager
def lock_held(lock_file: Path) -> Iterator[LockHolder]:
    """The lock on `lock_file` held by another process until the block ends (or `release`)."""
    holder = LockHolder(lock_file)
    try:
        yield holder
    finally:
        holder.release()


class LockProbeSystem(LocalSystem):
    """A LocalSystem that says when a lock test found a lock held: `waiting` is set then."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.waiting = threading.Event()

    def lock_holder(self, path: str) -> int | None:
        pid = super().lock_holder(path)
        if pid is not None:
            self.waiting.set()
        return pid


class LockRaceSystem(LocalSystem):
    """A LocalSystem where another process takes the dpkg lock just before the first change.

    This is the race the lock wait cannot close: the lock was free when checked, then
    someone took it before dpkg started. The holder lets it go when the lock is next
    tested, after that first attempt: dpkg surely finds it taken, the retry surely free.
    """

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.holders: list[LockHolder] = []
        self.attempts = 0  # commands run that change the system

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        if mutates:
            self.attempts += 1
            if not self.holders:
                self.holders.append(LockHolder(Path(self.host_path("/var/lib/dpkg/lock"))))
        return super().run(command, timeout=timeout, cwd=cwd, env=env, mutates=mutates)

    def lock_holder(self, path: str) -> int | None:
        if self.attempts:
            self.close()
        return super().lock_holder(path)

    def close(self) -> None:
        for holder in self.holders:
            holder.release()
