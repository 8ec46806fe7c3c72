"""Gather a node's facts: a few dozen small reads of /proc, /sys and os-release, no process.

`gather` is pure parsing over two readers (reader.py): `kernel` for the running
system's /proc, /sys and /run, `files` for the managed filesystem's os-release.
`gather_live` is the production pairing: the host's /proc and /sys (they describe the
running kernel, whatever --root is) and the node's System for os-release (under
--root: a chroot or an image being built has its own distribution).
"""

from __future__ import annotations

import os
import re
import shlex

from reconciler.facts import network, virt
from reconciler.facts.model import Cpu, Disk, Facts, Kernel, Memory, OsRelease
from reconciler.facts.reader import DirectoryReader, Reader, SystemReader, TextSource
from reconciler.system.interface import System
from reconciler.system.local import LocalSystem

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")  # os-release(5): in this order
SECTOR = 512  # /sys/block/*/size counts 512-byte sectors, whatever the device's own
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def gather_live(system: System) -> Facts:
    """This machine's facts: the host's /proc and /sys, os-release under the system's root."""
    return gather(DirectoryReader("/"), SystemReader(system))


def gather_at(root: str) -> Facts:
    """`gather_live` for a node rooted at `root`, read without running anything."""
    return gather_live(LocalSystem(root, host_commands=False))


def gather(kernel: Reader, files: TextSource) -> Facts:
    cpuinfo = kernel.text("/proc/cpuinfo", limit=1 << 20) or ""
    interfaces = network.interfaces(kernel)
    return Facts(
        hostname=_line(kernel, "/proc/sys/kernel/hostname"),
        os=os_release(files),
        kernel=Kernel(name=_line(kernel, "/proc/sys/kernel/ostype"),
                      release=_line(kernel, "/proc/sys/kernel/osrelease"),
                      version=_line(kernel, "/proc/sys/kernel/version")),
        architecture=_line(kernel, "/proc/sys/kernel/arch")
        or (os.uname().machine if kernel.live else None),
        cpu=Cpu(count=cpu_count(kernel, cpuinfo), model=_cpu_model(cpuinfo)),
        memory=memory(kernel),
        disks=disks(kernel),
        interfaces=interfaces,
        default_ipv4=network.default_ipv4(kernel, interfaces),
        default_ipv6=network.default_ipv6(kernel, interfaces),
        virtualisation=virt.detect(kernel, cpuinfo),
    )


def _line(reader: TextSource, path: str) -> str | None:
    text = reader.text(path)
    return text.strip() or None if text is not None else None


def os_release(files: TextSource) -> OsRelease:
    """The first os-release that can be read; KEY="value" lines, shell-quoted."""
    for path in OS_RELEASE:
        text = files.text(path)
        if text is None:
            continue
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, raw = line.partition("=")
            if not sep or not key.strip().isidentifier():
                continue
            try:
                words = shlex.split(raw, comments=True)
            except ValueError:
                continue
            values[key.strip()] = " ".join(words)
        return OsRelease(
            id=values.get("ID"), id_like=tuple(values.get("ID_LIKE", "").split()),
            name=values.get("NAME"), pretty_name=values.get("PRETTY_NAME"),
            version_id=values.get("VERSION_ID"), version_codename=values.get("VERSION_CODENAME"))
    return OsRelease()


def cpu_count(reader: Reader, cpuinfo: str) -> int:
    """Online CPUs, from the kernel's list ("0-3,8-11"); else processors in cpuinfo."""
    online = _line(reader, "/sys/devices/system/cpu/online")
    if online:
        count = 0
        for part in online.split(","):
            match = _RANGE.match(part.strip())
            if match is None:
                break
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            count += last - first + 1
        else:
            if count:
                return count
    return max(1, sum(1 for line in cpuinfo.splitlines() if line.startswith("processor")))


def _cpu_model(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip() or None
    return None


def memory(reader: Reader) -> Memory:
    """MemTotal and SwapTotal of /proc/meminfo, in MiB."""
    values: dict[str, int] = {}
    for line in (reader.text("/proc/meminfo") or "").splitlines():
        key, sep, rest = line.partition(":")
        words = rest.split()
        if sep and words and words[0].isdigit():
            values[key] = int(words[0])
    return Memory(total_mb=values.get("MemTotal", 0) // 1024,
                  swap_mb=values.get("SwapTotal", 0) // 1024)


def disks(reader: Reader) -> dict[str, Disk]:
    """Block devices with a device behind them (not loop, zram, device-mapper or md)."""
    found = {}
    for name in reader.listdir("/sys/block"):
        base = f"/sys/block/{name}"
        if not reader.exists(f"{base}/device"):
            continue
        sectors = _line(reader, f"{base}/size") or "0"
        found[name] = Disk(
            size_bytes=int(sectors) * SECTOR if sectors.isdigit() else 0,
            rotational=_line(reader, f"{base}/queue/rotational") == "1",
            removable=_line(reader, f"{base}/removable") == "1",
            model=_line(reader, f"{base}/device/model"))
    return found
