"""Test helpers for the package backend: real .deb files, dpkg roots and dpkg lock holders."""

from __future__ import annotations

import subprocess
import sys
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
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@contextmanager
def lock_held(lock_file: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding a real fcntl lock on `lock_file` for `seconds`, as dpkg does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock_file), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


class LockRaceSystem(LocalSystem):
    """A LocalSystem where another process takes the dpkg lock just before the first change.

    This is the race the lock wait cannot close: the lock was free when checked, then
    someone took it before dpkg started. The holder keeps it for `seconds`.
    """

    def __init__(self, root: str, seconds: float) -> None:
        super().__init__(root)
        self._seconds = seconds
        self.holders: list[subprocess.Popen[str]] = []

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        if mutates and not self.holders:
            lock = Path(self.host_path("/var/lib/dpkg/lock"))
            holder = subprocess.Popen(
                [sys.executable, "-c", _HOLDER, str(lock), str(self._seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.holders.append(holder)
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
        return super().run(command, timeout=timeout, cwd=cwd, env=env, mutates=mutates)

    def close(self) -> None:
        for holder in self.holders:
            holder.kill()
            holder.wait()
