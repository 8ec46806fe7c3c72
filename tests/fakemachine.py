"""A fake machine for facts tests: the /proc, /sys and /run files a real kernel shows,
written under a directory, with what any test wants changed or removed.

The default machine: 4 CPUs, 7976 MiB of memory and 2047 MiB of swap, one SSD and a
loop device, eth0 with two IPv4 addresses and a default route, eth1, the loopback,
IPv6 on eth0, a QEMU virtual machine running Debian 12.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path


def route_hex(address: str) -> str:
    """An IPv4 address as /proc/net/route writes it (host byte order, little-endian here)."""
    return f"{int.from_bytes(socket.inet_aton(address), 'little'):08X}"


def route_line(interface: str, destination: str, gateway: str, flags: int, metric: int,
               mask: str) -> str:
    return (f"{interface}\t{route_hex(destination)}\t{route_hex(gateway)}\t{flags:04X}\t0\t0\t"
            f"{metric}\t{route_hex(mask)}\t0\t0\t0")


ROUTE = "\n".join([
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
    route_line("eth0", "0.0.0.0", "10.1.0.1", 0x3, 100, "0.0.0.0"),
    route_line("eth0", "10.1.0.0", "0.0.0.0", 0x1, 100, "255.255.255.0"),
    route_line("eth1", "172.16.0.0", "0.0.0.0", 0x1, 0, "255.255.0.0"),
]) + "\n"

FIB_TRIE_TABLE = """\
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.1.0.0/24 2 0 2
        |-- 10.1.0.0
           /24 link UNICAST
        |-- 10.1.0.20
           /32 host LOCAL
        |-- 10.1.0.77
           /32 host LOCAL
        |-- 10.1.0.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 172.16.5.10
        /32 host LOCAL
"""

IF_INET6 = """\
20010db8000000000000000000000010 02 40 00 80     eth0
fe80000000000000505400fffe123456 02 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""

IPV6_ROUTE = """\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""  # noqa: E501

CPUINFO = "".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230\n"
    "flags\t\t: fpu vme de pse hypervisor sse2\n\n" for n in range(4))

MACHINE: dict[str, str | None] = {
    "proc/sys/kernel/hostname": "web-01\n",
    "proc/sys/kernel/ostype": "Linux\n",
    "proc/sys/kernel/osrelease": "6.1.0-18-amd64\n",
    "proc/sys/kernel/version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n",
    "proc/sys/kernel/arch": "x86_64\n",
    "proc/cpuinfo": CPUINFO,
    "proc/meminfo": "MemTotal:        8167940 kB\nMemFree:         1000000 kB\n"
                    "SwapTotal:       2097148 kB\nSwapFree:        2097148 kB\n",
    "proc/net/route": ROUTE,
    "proc/net/fib_trie": f"Main:\n{FIB_TRIE_TABLE}Local:\n{FIB_TRIE_TABLE}",
    "proc/net/if_inet6": IF_INET6,
    "proc/net/ipv6_route": IPV6_ROUTE,
    "proc/1/cgroup": "0::/init.scope\n",
    "proc/self/mountinfo": "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                           "28 27 0:5 / /proc rw - proc proc rw\n",
    "sys/devices/system/cpu/online": "0-3\n",
    "sys/block/sda/size": "209715200\n",
    "sys/block/sda/removable": "0\n",
    "sys/block/sda/queue/rotational": "0\n",
    "sys/block/sda/device/model": "QEMU HARDDISK   \n",
    "sys/block/loop0/size": "0\n",
    "sys/block/loop0/removable": "0\n",
    "sys/class/net/bonding_masters": "\n",
    "sys/class/net/eth0/address": "52:54:00:12:34:56\n",
    "sys/class/net/eth0/mtu": "1500\n",
    "sys/class/net/eth0/operstate": "up\n",
    "sys/class/net/eth1/address": "52:54:00:ab:cd:ef\n",
    "sys/class/net/eth1/mtu": "9000\n",
    "sys/class/net/eth1/operstate": "up\n",
    "sys/class/net/lo/address": "00:00:00:00:00:00\n",
    "sys/class/net/lo/mtu": "65536\n",
    "sys/class/net/lo/operstate": "unknown\n",
    "sys/class/dmi/id/sys_vendor": "QEMU\n",
    "sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
    "usr/lib/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                          'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
                          'ID=debian\nHOME_URL="https://www.debian.org/"\n',
}


def make_machine(root: Path, changes: Mapping[str, str | None] | None = None) -> Path:
    """Write the default machine under `root`, with `changes` (None removes a file), and
    /etc/os-release as the usual symlink to ../usr/lib/os-release. Returns `root`."""
    for rel, content in {**MACHINE, **(changes or {})}.items():
        if content is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "etc").mkdir(exist_ok=True)
    link = root / "etc/os-release"
    if not (link.exists() or link.is_symlink()):
        link.symlink_to("../usr/lib/os-release")
    return root
