"""Facts: gathered from a machine's /proc, /sys, /run and os-release, never by running
anything; against a fake machine written under a temporary directory, and against the
real one this test runs on."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from configrepo import Workspace
from fakemachine import make_machine, route_line

from reconciler.facts.gather import gather, gather_at
from reconciler.facts.model import (
    Address,
    Cpu,
    DefaultRoute,
    Disk,
    Facts,
    Interface,
    Kernel,
    Memory,
    OsRelease,
    Virtualisation,
)
from reconciler.facts.reader import DirectoryReader, SystemReader
from reconciler.system.local import LocalSystem


def facts_of(root: Path) -> Facts:
    return gather(DirectoryReader(str(root)), SystemReader(LocalSystem(str(root))))


def machine(tmp_path: Path, **changes: str | None) -> Facts:
    """The facts of the default fake machine with `changes` (keys are paths with __ for /)."""
    return facts_of(make_machine(tmp_path, {k.replace("__", "/"): v for k, v in changes.items()}))


def test_every_fact_of_a_fake_machine_comes_from_its_files(tmp_path: Path) -> None:
    assert machine(tmp_path) == Facts(
        hostname="web-01",
        os=OsRelease(id="debian", name="Debian GNU/Linux",
                     pretty_name="Debian GNU/Linux 12 (bookworm)", version_id="12",
                     version_codename="bookworm"),
        kernel=Kernel(name="Linux", release="6.1.0-18-amd64",
                      version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"),
        architecture="x86_64",
        cpu=Cpu(count=4, model="Intel(R) Xeon(R) Gold 6230"),
        memory=Memory(total_mb=7976, swap_mb=2047),
        disks={"sda": Disk(size_bytes=107374182400, model="QEMU HARDDISK")},
        interfaces={
            "eth0": Interface(
                mac="52:54:00:12:34:56", mtu=1500, state="up", address="10.1.0.20",
                address6="2001:db8::10",
                ipv4=(Address(address="10.1.0.20", prefix=24),
                      Address(address="10.1.0.77", prefix=24)),
                ipv6=(Address(address="2001:db8::10", prefix=64),
                      Address(address="fe80::5054:ff:fe12:3456", prefix=64, scope="link"))),
            "eth1": Interface(mac="52:54:00:ab:cd:ef", mtu=9000, state="up",
                              address="172.16.5.10",
                              ipv4=(Address(address="172.16.5.10", prefix=16),)),
            "lo": Interface(mtu=65536, state="unknown", address="127.0.0.1", address6="::1",
                            ipv4=(Address(address="127.0.0.1", prefix=8, scope="host"),),
                            ipv6=(Address(address="::1", prefix=128, scope="host"),)),
        },
        default_ipv4=DefaultRoute(interface="eth0", gateway="10.1.0.1", address="10.1.0.20"),
        default_ipv6=DefaultRoute(interface="eth0", gateway="fe80::1", address="2001:db8::10"),
        virtualisation=Virtualisation(role="guest", type="qemu"),
    )


def test_cpu_count_adds_up_the_online_ranges(tmp_path: Path) -> None:
    found = machine(tmp_path, sys__devices__system__cpu__online="0-3,8-11,16\n")
    assert found.cpu.count == 9


def test_cpu_count_falls_back_to_the_processors_of_cpuinfo(tmp_path: Path) -> None:
    assert machine(tmp_path, sys__devices__system__cpu__online=None).cpu.count == 4


def test_os_release_prefers_etc_over_usr_lib_and_unquotes_like_a_shell(tmp_path: Path) -> None:
    found = facts_of(make_machine(tmp_path, {"etc/os-release": (
        "ID=ubuntu\nID_LIKE=debian\nNAME='Ubuntu'\nVERSION_ID=\"22.04\"\n"
        "PRETTY_NAME=\"Ubuntu 22.04.4 LTS \\\"Jammy\\\"\"\n# a comment\nnot a line\n")}))
    assert found.os == OsRelease(id="ubuntu", id_like=("debian",), name="Ubuntu",
                                 version_id="22.04", pretty_name='Ubuntu 22.04.4 LTS "Jammy"')


def test_os_release_is_read_under_the_root_not_from_the_host(tmp_path: Path) -> None:
    kernel = make_machine(tmp_path / "kernel")
    node = tmp_path / "node"
    (node / "etc").mkdir(parents=True)
    (node / "etc/os-release").write_text("ID=alpine\n")
    found = gather(DirectoryReader(str(kernel)), SystemReader(LocalSystem(str(node))))
    assert (found.os.id, found.hostname) == ("alpine", "web-01")


def test_a_root_without_os_release_has_no_os_facts(tmp_path: Path) -> None:
    found = facts_of(make_machine(tmp_path, {"usr/lib/os-release": None}))
    assert found.os == OsRelease()


def test_an_ipv4_address_no_on_link_route_covers_is_not_listed(tmp_path: Path) -> None:
    route = "Iface\tDestination\n" + route_line("eth1", "172.16.0.0", "0.0.0.0", 0x1, 0,
                                                "255.255.0.0") + "\n"
    found = machine(tmp_path, proc__net__route=route)
    assert [a.address for a in found.interfaces["eth0"].ipv4] == []
    assert found.interfaces["eth0"].address is None
    assert found.interfaces["lo"].address == "127.0.0.1"
    assert found.default_ipv4 is None


def test_the_default_route_with_the_lowest_metric_wins(tmp_path: Path) -> None:
    route = "Iface\tDestination\n" + "\n".join([
        route_line("eth0", "0.0.0.0", "10.1.0.1", 0x3, 100, "0.0.0.0"),
        route_line("eth1", "0.0.0.0", "172.16.0.1", 0x3, 10, "0.0.0.0"),
        route_line("eth1", "172.16.0.0", "0.0.0.0", 0x1, 0, "255.255.0.0"),
    ]) + "\n"
    found = machine(tmp_path, proc__net__route=route)
    assert found.default_ipv4 == DefaultRoute(interface="eth1", gateway="172.16.0.1",
                                              address="172.16.5.10")


def test_a_machine_without_network_files_has_no_addresses(tmp_path: Path) -> None:
    found = machine(tmp_path, proc__net__route=None, proc__net__fib_trie=None,
                    proc__net__if_inet6=None, proc__net__ipv6_route=None)
    assert (found.default_ipv4, found.default_ipv6) == (None, None)
    assert all(not i.ipv4 and not i.ipv6 for i in found.interfaces.values())


@pytest.mark.parametrize(("changes", "expected"), [
    ({"run/systemd/container": "lxc\n"}, Virtualisation(role="container", type="lxc")),
    ({"run/.containerenv": ""}, Virtualisation(role="container", type="podman")),
    ({"proc/1/cgroup": "0::/kubepods/besteffort/pod1\n"},
     Virtualisation(role="container", type="kubernetes")),
    ({".dockerenv": "", "proc/self/mountinfo": "1 0 0:1 / / rw - overlay overlay rw\n"},
     Virtualisation(role="container", type="docker")),
    ({".dockerenv": ""}, Virtualisation(role="guest", type="qemu")),
    ({"sys/class/dmi/id/sys_vendor": "VMware, Inc.\n"}, Virtualisation(role="guest",
                                                                      type="vmware")),
    ({"sys/class/dmi/id/sys_vendor": None}, Virtualisation(role="guest")),
    ({"sys/hypervisor/type": "xen\n"}, Virtualisation(role="guest", type="xen")),
    ({"sys/class/dmi/id/sys_vendor": "Dell Inc.\n",
      "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu vme\n"}, Virtualisation(role="host")),
], ids=["systemd-container", "podman", "kubernetes", "docker-overlay",
        "dockerenv-alone-is-no-container", "vmware", "hypervisor-flag-only", "xen",
        "bare-metal"])
def test_virtualisation(tmp_path: Path, changes: dict[str, str | None],
                        expected: Virtualisation) -> None:
    assert facts_of(make_machine(tmp_path, changes)).virtualisation == expected


def test_unreadable_facts_are_unknown_not_errors(tmp_path: Path) -> None:
    found = facts_of(tmp_path)
    assert found == Facts(cpu=Cpu(count=1), memory=Memory(total_mb=0))


def test_the_real_machine_agrees_with_the_kernel_it_runs() -> None:
    found = gather_at("/")
    uname = os.uname()
    assert found.hostname == uname.nodename
    assert (found.kernel.release, found.architecture) == (uname.release, uname.machine)
    assert found.cpu.count == os.cpu_count()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert found.memory.total_mb == pages // (1 << 20)
    assert set(found.interfaces) == {name for _, name in socket.if_nameindex()}
    if "lo" in found.interfaces:
        assert found.interfaces["lo"].address == "127.0.0.1"
    if found.default_ipv4 is not None:
        assert found.default_ipv4.interface in found.interfaces


def test_facts_command_prints_what_templates_write(ws: Workspace, tmp_path: Path) -> None:
    root = make_machine(tmp_path / "machine")
    done = ws.cli("facts", "--root", root, "--facts-root", root)
    lines = dict(line.split(None, 1) for line in done.out.splitlines())
    assert done.code == 0, done.err
    assert (lines["facts.cpu.count"], lines["facts.interfaces.eth0.ipv4[1].address"],
            lines["facts.os.version_codename"], lines["facts.disks.sda.model"],
            lines["facts.interfaces.lo.mac"]) == ("4", "10.1.0.77", "bookworm",
                                                   "QEMU HARDDISK", "none")


def test_facts_command_json_is_the_published_model(ws: Workspace, tmp_path: Path) -> None:
    root = make_machine(tmp_path / "machine")
    done = ws.cli("facts", "--root", root, "--facts-root", root, "--format", "json")
    assert done.code == 0, done.err
    assert Facts.model_validate(json.loads(done.out)) == facts_of(root)
