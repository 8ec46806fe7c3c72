"""Is this machine a container, a virtual machine or bare metal? From files alone.

A container first (its own marker files, or its init's cgroup), then a hypervisor (Xen's
/sys/hypervisor, the DMI vendor a hypervisor presents, or the CPU's `hypervisor`
flag), else a host. `/.dockerenv` alone is not trusted: machine images built from a
Docker image keep it; it counts when the root filesystem is an overlay, as Docker's is.
"""

from __future__ import annotations

from reconciler.facts.model import Virtualisation
from reconciler.facts.reader import Reader

# (field of /sys/class/dmi/id, text it contains, hypervisor type), first match wins.
_DMI = (
    ("product_name", "KVM", "kvm"),
    ("sys_vendor", "QEMU", "qemu"),
    ("sys_vendor", "VMware", "vmware"),
    ("product_name", "VirtualBox", "virtualbox"),
    ("sys_vendor", "innotek", "virtualbox"),
    ("sys_vendor", "Xen", "xen"),
    ("sys_vendor", "Microsoft Corporation", "hyperv"),
    ("sys_vendor", "Amazon EC2", "amazon"),
    ("sys_vendor", "Google", "google"),
    ("product_name", "OpenStack", "openstack"),
    ("sys_vendor", "Parallels", "parallels"),
    ("bios_vendor", "SeaBIOS", "kvm"),
)
_CGROUP = (("/docker/", "docker"), ("/lxc/", "lxc"), ("kubepods", "kubernetes"),
           ("/libpod-", "podman"))
_OVERLAYS = frozenset({"overlay", "aufs", "fuse-overlayfs"})


def detect(reader: Reader, cpuinfo: str) -> Virtualisation:
    """What kind of machine `reader` shows; `cpuinfo` is /proc/cpuinfo's text."""
    container = _container(reader)
    if container is not None:
        return Virtualisation(role="container", type=container or None)
    guest = _guest(reader, cpuinfo)
    if guest is not None:
        return Virtualisation(role="guest", type=guest or None)
    return Virtualisation(role="host")


def _container(reader: Reader) -> str | None:
    """The container type ("" when unknown), or None outside a container."""
    marker = reader.text("/run/systemd/container")
    if marker is not None:
        return marker.strip()
    if reader.exists("/run/.containerenv"):
        return "podman"
    cgroup = reader.text("/proc/1/cgroup") or ""
    for needle, kind in _CGROUP:
        if needle in cgroup:
            return kind
    if reader.exists("/.dockerenv") and _root_type(reader) in _OVERLAYS:
        return "docker"
    return None


def _root_type(reader: Reader) -> str | None:
    """The filesystem type mounted at / (the last mount there is the one seen)."""
    found = None
    for line in (reader.text("/proc/self/mountinfo", limit=1 << 20) or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - " in line:
            found = line.split(" - ", 1)[1].split()[0]
    return found


def _guest(reader: Reader, cpuinfo: str) -> str | None:
    """The hypervisor type ("" when unknown), or None on bare metal."""
    xen = reader.text("/sys/hypervisor/type")
    if xen is not None and xen.strip():
        return xen.strip()
    for field, needle, kind in _DMI:
        if needle in (reader.text(f"/sys/class/dmi/id/{field}") or ""):
            return kind
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "" if "hypervisor" in line.split(":", 1)[-1].split() else None
    return None
