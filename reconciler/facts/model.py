"""Facts: what a node *is* (OS, kernel, CPUs, memory, disks, network), as a stable model.

Templates see these as `facts.*`; `reconciler facts --format json` prints exactly this
model, which is also what a node publishes for fleet-wide plans. Readers ignore fields
they do not know (a newer node may add some); `version` changes only on a breaking
change. Sizes are in MiB (`total_mb`) or bytes (`size_bytes`), as their names say.
"""

# No `from __future__ import annotations`: pydantic would evaluate each field's annotation
# from its string, compiling it first, in every process that builds these models.

from typing import Literal

from pydantic import BaseModel, ConfigDict

FACTS_VERSION = 1


class FactsModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class OsRelease(FactsModel):
    """The distribution, from os-release(5) of the managed filesystem."""

    id: str | None = None  # "debian"
    id_like: tuple[str, ...] = ()
    name: str | None = None  # "Debian GNU/Linux"
    pretty_name: str | None = None
    version_id: str | None = None  # "12"
    version_codename: str | None = None  # "bookworm"


class Kernel(FactsModel):
    name: str | None = None  # "Linux"
    release: str | None = None  # "6.1.0-18-amd64"
    version: str | None = None  # "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"


class Cpu(FactsModel):
    count: int  # online logical CPUs
    model: str | None = None


class Memory(FactsModel):
    total_mb: int  # MiB
    swap_mb: int = 0  # MiB


class Disk(FactsModel):
    """A block device backed by hardware (loop, zram, device-mapper and md are left out)."""

    size_bytes: int
    rotational: bool = False
    removable: bool = False
    model: str | None = None


class Address(FactsModel):
    address: str
    prefix: int
    scope: Literal["global", "link", "host", "site"] = "global"


class Interface(FactsModel):
    """A network interface; `address`/`address6` are its first global address (or its
    first address at all, for the loopback)."""

    mac: str | None = None
    mtu: int | None = None
    state: str | None = None  # operstate: "up", "down", "unknown"...
    address: str | None = None
    address6: str | None = None
    ipv4: tuple[Address, ...] = ()
    ipv6: tuple[Address, ...] = ()


class DefaultRoute(FactsModel):
    """Where the default route leaves: the interface, the gateway, the interface's address."""

    interface: str
    gateway: str | None = None
    address: str | None = None


class Virtualisation(FactsModel):
    role: Literal["host", "guest", "container"] = "host"
    type: str | None = None  # "kvm", "vmware", "docker", "lxc"... None when unknown


class Facts(FactsModel):
    """Everything gathered about one node."""

    version: int = FACTS_VERSION
    hostname: str | None = None
    os: OsRelease = OsRelease()
    kernel: Kernel = Kernel()
    architecture: str | None = None  # the kernel's machine name: "x86_64", "aarch64"
    cpu: Cpu
    memory: Memory
    disks: dict[str, Disk] = {}
    interfaces: dict[str, Interface] = {}
    default_ipv4: DefaultRoute | None = None
    default_ipv6: DefaultRoute | None = None
    virtualisation: Virtualisation = Virtualisation()
