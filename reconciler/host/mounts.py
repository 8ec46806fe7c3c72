"""Mounted filesystems of the host: what is mounted where (findmnt), and mount, remount,
umount. Mount points are host paths: under another root, the root's mount point.

Only the host has a mount table, so under a root other than "/" these run only with
--host-commands (the actions hold them otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from reconciler.system.interface import System, ToolError

TIMEOUT = 120.0
TAGS = ("UUID=", "LABEL=", "PARTUUID=", "PARTLABEL=")


class MountError(ToolError):
    kind = "mount"


@dataclass(frozen=True)
class Mounted:
    """The filesystem mounted on a point (the topmost, when several are stacked)."""

    source: str
    fstype: str
    options: str


def mounted(system: System, host_point: str) -> Mounted | None:
    """What is mounted on `host_point`, or None."""
    result = system.run(["findmnt", "-J", "-o", "SOURCE,FSTYPE,OPTIONS", "--mountpoint",
                         host_point], timeout=TIMEOUT, mutates=False)
    if result.returncode == 1 and not result.stdout.strip():
        return None
    if result.timed_out or result.returncode != 0:
        raise MountError(host_point, "findmnt failed", result.stderr)
    found = json.loads(result.stdout)["filesystems"][-1]
    return Mounted(found["source"], found["fstype"], found["options"])


def device_path(system: System, device: str) -> str | None:
    """The device a tag (UUID=..., LABEL=...) names, or the device itself; None when a
    tag matches no device on this host."""
    if not device.startswith(TAGS):
        return device
    result = system.run(["findfs", device], timeout=TIMEOUT, mutates=False)
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def mount(system: System, device: str, fstype: str, options: str, host_point: str) -> None:
    _run(system, host_point, ["mount", "-t", fstype, "-o", options, "--", device, host_point])


def remount(system: System, options: str, host_point: str) -> None:
    _run(system, host_point, ["mount", "-o", f"remount,{options}", "--", host_point])


def unmount(system: System, host_point: str) -> None:
    _run(system, host_point, ["umount", "--", host_point])


def _run(system: System, host_point: str, command: list[str]) -> None:
    result = system.run(command, timeout=TIMEOUT, mutates=True)
    if result.timed_out:
        raise MountError(host_point, f"{command[0]} timed out after {TIMEOUT:g}s", result.stderr)
    if result.returncode != 0:
        raise MountError(host_point, f"{command[0]} exited {result.returncode}", result.stderr)
