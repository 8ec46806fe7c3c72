"""Network facts from /sys and /proc/net alone: interfaces, their addresses, default routes.

IPv6 addresses come with their interface in /proc/net/if_inet6. IPv4 has no such
file: the local addresses are the `/32 host LOCAL` entries of /proc/net/fib_trie, and
each is given to the interface whose on-link route in /proc/net/route covers it (the
longest prefix wins), with that route's prefix length; 127.0.0.0/8 belongs to the
loopback. An address no on-link route covers (an address added with noprefixroute)
is not listed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass

from reconciler.facts.model import Address, DefaultRoute, Interface
from reconciler.facts.reader import Reader

NET = "/sys/class/net"
RTF_UP = 0x1
RTF_GATEWAY = 0x2
RTF_REJECT = 0x200
_IPV6_SCOPES = {0x00: "global", 0x10: "host", 0x20: "link", 0x40: "site"}
_LOCAL = re.compile(r"^\s*/32 host LOCAL\s*$")
_LEAF = re.compile(r"^\s*\|-- (\d+\.\d+\.\d+\.\d+)\s*$")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


@dataclass(frozen=True)
class Route4:
    """One line of /proc/net/route, addresses as integers in network order."""

    interface: str
    destination: int
    gateway: int
    mask: int
    flags: int
    metric: int


def _ipv4(hex_word: str) -> int:
    """A /proc/net/route address (hex, in the kernel's byte order) as a network-order int."""
    return int.from_bytes(struct.pack("=I", int(hex_word, 16)), "big")


def _dotted(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def routes4(reader: Reader) -> list[Route4]:
    found = []
    for line in (reader.text("/proc/net/route") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            found.append(Route4(fields[0], _ipv4(fields[1]), _ipv4(fields[2]), _ipv4(fields[7]),
                                int(fields[3], 16), int(fields[6])))
        except ValueError:
            continue
    return found


def local_ipv4(reader: Reader) -> list[str]:
    """The machine's own IPv4 addresses, in the order fib_trie lists them, each once."""
    found: dict[str, None] = {}
    leaf: str | None = None
    for line in (reader.text("/proc/net/fib_trie", limit=1 << 20) or "").splitlines():
        match = _LEAF.match(line)
        if match:
            leaf = match.group(1)
        elif leaf is not None and _LOCAL.match(line):
            found[leaf] = None
    return list(found)


def _assign_ipv4(addresses: list[str], routes: list[Route4]) -> dict[str, list[Address]]:
    by_interface: dict[str, list[Address]] = {}
    on_link = [r for r in routes if r.gateway == 0 and r.mask and r.flags & RTF_UP]
    for text in addresses:
        value = int(ipaddress.IPv4Address(text))
        covering = [r for r in on_link if value & r.mask == r.destination]
        if covering:
            best = max(covering, key=lambda r: r.mask)
            interface, prefix = best.interface, bin(best.mask).count("1")
        elif ipaddress.IPv4Address(text) in _LOOPBACK:
            interface, prefix = "lo", 8
        else:
            continue
        scope = "host" if interface == "lo" else \
            "link" if ipaddress.IPv4Address(text).is_link_local else "global"
        by_interface.setdefault(interface, []).append(Address(address=text, prefix=prefix,
                                                              scope=scope))  # type: ignore[arg-type]
    return by_interface


def _ipv6_addresses(reader: Reader) -> dict[str, list[Address]]:
    by_interface: dict[str, list[Address]] = {}
    for line in (reader.text("/proc/net/if_inet6") or "").splitlines():
        fields = line.split()
        if len(fields) != 6:
            continue
        try:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0])).compressed
            prefix, scope = int(fields[2], 16), int(fields[3], 16)
        except ValueError:
            continue
        by_interface.setdefault(fields[5], []).append(
            Address(address=address, prefix=prefix,
                    scope=_IPV6_SCOPES.get(scope, "global")))  # type: ignore[arg-type]
    return by_interface


def _first(addresses: list[Address]) -> str | None:
    preferred = [a for a in addresses if a.scope == "global"] or addresses
    return preferred[0].address if preferred else None


def _number(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def interfaces(reader: Reader) -> dict[str, Interface]:
    """Every interface of /sys/class/net with its link facts and addresses, by name."""
    ipv4 = _assign_ipv4(local_ipv4(reader), routes4(reader))
    ipv6 = _ipv6_addresses(reader)
    found = {}
    for name in reader.listdir(NET):
        if not reader.exists(f"{NET}/{name}/address"):
            continue  # not an interface (bonding_masters)
        mac = (reader.text(f"{NET}/{name}/address") or "").strip() or None
        state = (reader.text(f"{NET}/{name}/operstate") or "").strip() or None
        four, six = ipv4.get(name, []), ipv6.get(name, [])
        found[name] = Interface(
            mac=None if mac == "00:00:00:00:00:00" else mac,
            mtu=_number(reader.text(f"{NET}/{name}/mtu")), state=state,
            address=_first(four), address6=_first(six), ipv4=tuple(four), ipv6=tuple(six))
    return found


def default_ipv4(reader: Reader, known: dict[str, Interface]) -> DefaultRoute | None:
    """The default IPv4 route with the lowest metric, if there is one."""
    candidates = [r for r in routes4(reader)
                  if r.destination == 0 and r.mask == 0 and r.flags & RTF_UP
                  and not r.flags & RTF_REJECT]
    if not candidates:
        return None
    best = min(candidates, key=lambda r: r.metric)
    interface = known.get(best.interface)
    return DefaultRoute(interface=best.interface,
                        gateway=_dotted(best.gateway) if best.gateway else None,
                        address=interface.address if interface else None)


def default_ipv6(reader: Reader, known: dict[str, Interface]) -> DefaultRoute | None:
    """The default IPv6 route with the lowest metric (not the loopback's reject route)."""
    best: tuple[int, str, str | None] | None = None
    for line in (reader.text("/proc/net/ipv6_route", limit=1 << 20) or "").splitlines():
        fields = line.split()
        if len(fields) != 10 or fields[1] != "00" or fields[9] == "lo":
            continue
        try:
            destination, hop = int(fields[0], 16), int(fields[4], 16)
            metric, flags = int(fields[5], 16), int(fields[8], 16)
        except ValueError:
            continue
        if destination or not flags & RTF_UP or flags & RTF_REJECT:
            continue
        gateway = ipaddress.IPv6Address(hop).compressed if hop else None
        if best is None or metric < best[0]:
            best = (metric, fields[9], gateway)
    if best is None:
        return None
    interface = known.get(best[1])
    return DefaultRoute(interface=best[1], gateway=best[2],
                        address=interface.address6 if interface else None)
