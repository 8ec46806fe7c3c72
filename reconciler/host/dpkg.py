"""Debian packages: query, install, upgrade and remove through dpkg and apt-get.

Everything runs through the `System` interface. Under a root other than "/" only dpkg
is used, with that root's own admin directory, so nothing on the host changes; apt-get
manages only the running system. Before changing anything we wait (bounded) for the
dpkg locks held by another apt or dpkg, and never kill it.
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cmp_to_key

from reconciler.system.interface import CommandResult, Stat, System, ToolError, UnsafePath

ADMIN_DIR = "/var/lib/dpkg"
LOCK_FILES = ("lock-frontend", "lock")
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_DPKG_OPTIONS = (
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
)
QUERY_FORMAT = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"

_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9][a-z0-9-]*)?")
_VERSION = re.compile(r"[A-Za-z0-9.+~:*?\[\]-]+")
_GLOB_CHARS = frozenset("*?[")
# How dpkg and apt say that someone else holds their lock.
_LOCK_HELD = re.compile(
    r"lock (?:was|is) locked by another process|Could not get lock|Unable to acquire the dpkg"
)
# Second letter of dpkg's status abbreviation, for states that are not plain "installed".
_PARTIAL_STATES = {
    "H": "half-installed",
    "U": "unpacked but not configured",
    "F": "half-configured",
    "W": "awaiting triggers",
    "t": "triggers pending",
}
_ABSENT_STATES = frozenset("nc")  # not installed, or only configuration files left


class PackageError(ToolError):
    """A package could not be queried, installed or removed; carries dpkg/apt's own words."""

    kind = "package"

    @property
    def package(self) -> str:
        return self.name


class PackageLockTimeout(PackageError):
    """Another apt or dpkg kept the dpkg lock for longer than we agreed to wait."""


@dataclass(frozen=True)
class InstalledPackage:
    """A package dpkg knows with some of its files on disk.

    `status` is dpkg's abbreviation: desired action, state, and error flag ("ii",
    "hi", "iF", "iHR"...). Only state "i" with no error flag is fully installed.
    """

    name: str
    version: str
    status: str

    @property
    def installed(self) -> bool:
        return self.status[1:2] == "i" and not self.status[2:].strip()

    @property
    def state(self) -> str:
        """Words for the status, for reports: "installed", "half-configured"..."""
        if self.status[2:].strip() == "R":
            return "reinstall required"
        if self.installed:
            return "installed"
        return _PARTIAL_STATES.get(self.status[1:2], f"in dpkg state {self.status!r}")


def query(system: System, name: str, *, timeout: float = 60.0) -> InstalledPackage | None:
    """What dpkg says about `name`: None when it is not installed (or only conffiles remain)."""
    _check_name(name)
    if system.root != "/" and _lstat(system, name, ADMIN_DIR) is None:
        return None
    command = ["dpkg-query", *_admindir_option(system, name), "-W", f"-f={QUERY_FORMAT}", name]
    result = system.run(command, timeout=timeout, mutates=False)
    if result.timed_out:
        raise PackageError(name, f"dpkg-query timed out after {timeout:g}s", result.stderr)
    if result.returncode != 0:
        if "no packages found matching" in result.stderr:
            return None
        raise PackageError(name, f"dpkg-query failed (exit {result.returncode})", result.stderr)
    found = [_parse_query_line(name, line) for line in result.stdout.splitlines() if line]
    present = [p for p in found if p.status[1:2] not in _ABSENT_STATES]
    if not present:
        return None
    return next((p for p in present if p.installed), present[0])


def version_matches(installed: str, wanted: str | None) -> bool:
    """True if `installed` satisfies `wanted`: any (None), a glob like "1.22.*", or equal."""
    if wanted is None:
        return True
    if is_version_glob(wanted):
        return fnmatchcase(installed, wanted)
    return compare_versions(installed, wanted) == 0


def is_version_glob(version: str) -> bool:
    """Whether a wanted version is a glob ("1.22.*") rather than one exact version."""
    return any(char in _GLOB_CHARS for char in version)


def newest_matching(candidates: Iterable[str], wanted: str) -> str | None:
    """The newest of `candidates` (by dpkg's ordering) that `wanted` matches, or None."""
    matching = [version for version in candidates if version_matches(version, wanted)]
    return max(matching, key=cmp_to_key(compare_versions)) if matching else None


def compare_versions(a: str, b: str) -> int:
    """Compare two Debian versions as `dpkg --compare-versions` does: <0, 0 or >0."""
    epoch_a, upstream_a, revision_a = _split_version(a)
    epoch_b, upstream_b, revision_b = _split_version(b)
    if epoch_a != epoch_b:
        return epoch_a - epoch_b
    return _compare_part(upstream_a, upstream_b) or _compare_part(revision_a, revision_b)


def install(
    system: System,
    name: str,
    version: str | None = None,
    deb_host_path: str | None = None,
    *,
    reinstall: bool = False,
    lock_wait: float = 120.0,
    timeout: float = 600.0,
) -> CommandResult:
    """Install or upgrade `name`: from a .deb with dpkg, else from the archives with apt-get.

    `deb_host_path` is a path on the host (the file is not part of the node); a relative
    one is taken from the current directory, not from the root. With a
    version, the .deb must carry a matching one; apt resolves a glob to the newest
    matching candidate. `reinstall` asks apt to reinstall a half-installed package
    (dpkg -i always reinstalls).
    """
    _check_name(name)
    if version is not None:
        _check_version(name, version)
    env: dict[str, str] | None = None
    if deb_host_path is not None:
        deb_host_path = os.path.abspath(deb_host_path)
        _check_deb(system, name, version, deb_host_path, timeout)
        command = ["dpkg", *_root_options(system, name), "--install", deb_host_path]
    else:
        if system.root != "/":
            raise PackageError(
                name,
                f"cannot install from the archives into root {system.root}: apt-get only "
                "manages the running system; ship a .deb with the package action, "
                "or run on the node itself",
            )
        target = name
        if version is not None:
            target = f"{name}={_resolve_candidate(system, name, version, timeout)}"
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_DPKG_OPTIONS]
        if version is not None:
            command.append("--allow-downgrades")  # a pinned version is wanted even if older
        if reinstall:
            command.append("--reinstall")
        command.append(target)
        env = APT_ENV
    return _run_locked(system, name, "install", command, env, lock_wait, timeout)


def remove(
    system: System, name: str, *, lock_wait: float = 120.0, timeout: float = 600.0
) -> CommandResult:
    """Remove `name` (its conffiles stay), refusing if other installed packages depend on it.

    dpkg --remove is used on every root: unlike `apt-get remove -y`, it never removes the
    packages that depend on this one behind the operator's back.
    """
    _check_name(name)
    command = ["dpkg", *_root_options(system, name), "--remove", name]
    return _run_locked(system, name, "remove", command, None, lock_wait, timeout)


def wait_for_lock(system: System, name: str, lock_wait: float, poll: float = 0.2) -> None:
    """Wait until no other process holds a dpkg lock of the system's admin directory.

    Raises `PackageLockTimeout` after `lock_wait` seconds. The locks are only tested
    (`System.lock_holder`), never taken, so dpkg can start the moment we return.
    """
    deadline = time.monotonic() + lock_wait
    while True:
        held = _held_lock(system, name)
        if held is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            path, pid = held
            holder = f"process {pid}" if pid > 0 else "another process"
            raise PackageLockTimeout(
                name,
                f"the dpkg lock {path} is still held by {holder} after {lock_wait:g}s "
                "(another apt or dpkg is running; it is never killed, try again later)",
            )
        time.sleep(min(poll, remaining))


def _run_locked(
    system: System,
    name: str,
    verb: str,
    command: list[str],
    env: dict[str, str] | None,
    lock_wait: float,
    timeout: float,
) -> CommandResult:
    """Run a dpkg/apt command once the locks are free; retry once if it lost the race."""
    wait_for_lock(system, name, lock_wait)
    result = system.run(command, timeout=timeout, env=env, mutates=True)
    if result.returncode != 0 and not result.timed_out and _LOCK_HELD.search(result.stderr):
        wait_for_lock(system, name, lock_wait)
        result = system.run(command, timeout=timeout, env=env, mutates=True)
    if result.timed_out:
        raise PackageError(name, f"{verb} timed out after {timeout:g}s", result.stderr)
    if result.returncode != 0:
        raise PackageError(
            name, f"{verb} failed: {command[0]} exited {result.returncode}", result.stderr
        )
    return result


def _held_lock(system: System, name: str) -> tuple[str, int] | None:
    """The host path of the first lock file some other process holds, with its pid."""
    for lock_name in LOCK_FILES:
        path = posixpath.join(ADMIN_DIR, lock_name)
        try:
            pid = system.lock_holder(path)
        except (OSError, UnsafePath) as error:
            shown = _host_path(system, name, path)
            raise PackageError(name, f"cannot open the dpkg lock {shown}: {error}") from None
        if pid is not None:
            return _host_path(system, name, path), pid
    return None


def _resolve_candidate(system: System, name: str, version: str, timeout: float) -> str:
    """An exact version for apt: `version`, or the newest archive version its glob matches."""
    if not is_version_glob(version):
        return version
    result = system.run(["apt-cache", "madison", name], timeout=timeout, mutates=False)
    if result.timed_out or result.returncode != 0:
        raise PackageError(name, "apt-cache madison failed", result.stderr)
    candidates = []
    for line in result.stdout.splitlines():
        columns = [column.strip() for column in line.split("|")]
        if len(columns) >= 3 and columns[0] == name:
            candidates.append(columns[1])
    newest = newest_matching(candidates, version)
    if newest is None:
        available = ", ".join(candidates) or "none (is the package name right? apt-get update?)"
        raise PackageError(
            name, f"no version matching {version!r} in the archives; available: {available}"
        )
    return newest


def read_deb(system: System, deb_host_path: str, *, timeout: float = 60.0) -> tuple[str, str]:
    """The package name and version a .deb holds (read-only: usable in audit mode)."""
    deb_host_path = os.path.abspath(deb_host_path)
    result = system.run(
        ["dpkg-deb", "--field", deb_host_path, "Package", "Version"],
        timeout=timeout,
        mutates=False,
    )
    if result.timed_out or result.returncode != 0:
        raise PackageError(
            os.path.basename(deb_host_path), f"cannot read {deb_host_path} as a .deb", result.stderr
        )
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in result.stdout.splitlines())
    )
    return fields.get("Package", ""), fields.get("Version", "")


def _check_deb(
    system: System, name: str, version: str | None, deb_host_path: str, timeout: float
) -> None:
    """Refuse a .deb that is another package, or another version than the one wanted."""
    try:
        deb_name, deb_version = read_deb(system, deb_host_path, timeout=timeout)
    except PackageError as error:
        raise PackageError(name, error.message, error.stderr_tail) from None
    if deb_name != name.split(":")[0]:
        raise PackageError(name, f"{deb_host_path} holds package {deb_name!r}, not {name!r}")
    if not version_matches(deb_version, version):
        raise PackageError(
            name, f"{deb_host_path} holds version {deb_version}, which does not match {version}"
        )


def _root_options(system: System, name: str) -> list[str]:
    """dpkg options that confine it to the system's root and that root's admin directory.

    Maintainer scripts run chrooted into the root (dpkg's default with --root), so they
    never touch the host; a root without a shell cannot run them.
    """
    if system.root == "/":
        return []
    return [f"--root={system.root}", *_admindir_option(system, name)]


def _admindir_option(system: System, name: str) -> list[str]:
    if system.root == "/":
        return []
    return [f"--admindir={_host_path(system, name, ADMIN_DIR)}"]


def _host_path(system: System, name: str, path: str) -> str:
    try:
        return system.host_path(path)
    except UnsafePath as error:
        raise PackageError(name, f"unsafe dpkg directory {path}: {error}") from None


def _lstat(system: System, name: str, path: str) -> Stat | None:
    try:
        return system.lstat(path)
    except UnsafePath as error:
        raise PackageError(name, f"unsafe dpkg directory {path}: {error}") from None


def _parse_query_line(name: str, line: str) -> InstalledPackage:
    fields = line.split("\t")
    if len(fields) != 3:
        raise PackageError(name, f"unexpected dpkg-query output: {line!r}")
    package, version, status = fields
    return InstalledPackage(package, version, status.rstrip())


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise PackageError(name, "not a valid Debian package name")


def _check_version(name: str, version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise PackageError(name, f"not a valid Debian version or version glob: {version!r}")


def _split_version(version: str) -> tuple[int, str, str]:
    epoch = 0
    head, colon, rest = version.partition(":")
    if colon and head.isascii() and head.isdigit():
        epoch, version = int(head), rest
    upstream, hyphen, revision = version.rpartition("-")
    if not hyphen:
        return epoch, version, ""
    return epoch, upstream, revision


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _order(char: str) -> int:
    """dpkg's weight of a non-digit: "~" sorts before everything, letters before symbols."""
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (by weight) and digit runs (by value)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            weight_a = _order(a[i]) if i < len(a) and not _is_digit(a[i]) else 0
            weight_b = _order(b[j]) if j < len(b) and not _is_digit(b[j]) else 0
            if weight_a != weight_b:
                return weight_a - weight_b
            i += 1
            j += 1
        start_a = i
        while i < len(a) and _is_digit(a[i]):
            i += 1
        start_b = j
        while j < len(b) and _is_digit(b[j]):
            j += 1
        number_a = int(a[start_a:i] or "0")
        number_b = int(b[start_b:j] or "0")
        if number_a != number_b:
            return -1 if number_a < number_b else 1
    return 0


