"""Nodes of the example fleet built on this host's Debian packages, and private namespaces
to run their real daemons in (for tests/test_example_daemons*.py, test_example_checks.py).

A node image is a directory ROOT that starts as a freshly installed Debian node: a copy of
the host's /etc and dpkg database (the packages' own files, as Debian installed them) and
the packages' state directories, empty. `reconciler apply --root ROOT` then writes the
node's configuration into it; each node's image is built once per test session and a
test gets a copy (session_build.py). A `NodeNamespace` shows the image at /etc, /var, /usr/local
and /opt inside private mount, network and PID namespaces, with an empty /run and the
node's addresses on the loopback interface: daemons run there with their real paths,
addresses and ports, touch nothing of the host, and all die with the namespace.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar, cast

import pytest
from clirun import reconciler
from configrepo import git_env
from example_repo import example_fleet
from session_build import built_once

T = TypeVar("T")

# Every program the daemon tests run, by the Debian package scripts/test.sh installs.
TOOLS = {
    "/usr/sbin/nginx": "nginx",
    "/usr/sbin/sshd": "openssh-server",
    "/usr/sbin/chronyd": "chrony",
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/bin/memcached": "memcached",
    "/usr/bin/memcstat": "libmemcached-tools",
    "/usr/sbin/logrotate": "logrotate",
    "/usr/bin/crontab": "cron",
    "/usr/bin/systemd-analyze": "systemd",
    "/usr/bin/python3": "python3",
    "/usr/bin/nsenter": "util-linux",
    "/usr/bin/setpriv": "util-linux",
    "/bin/ip": "iproute2",
}

DPKG = Path("/var/lib/dpkg")
INFO = Path("var/lib/dpkg/info")  # in a node image

# State directories the packages create at install time: in an image they exist, empty,
# with the host's owner and mode. /var/log/mysql is not one of them (Debian 12's
# mariadb-server does not create it), and /var/lib/mysql empty is a fresh data directory.
PACKAGE_DIRS = (
    "/var/lib/nginx", "/var/log/nginx", "/var/www/html",
    "/var/lib/chrony",
    "/var/lib/mysql",
    "/var/spool/cron/crontabs",
)

# The programs inside a namespace see this environment and nothing of the test's.
NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8"}

_HOLDER = """
set -eu
root="$1"; shift
mount --bind "$root/etc" /etc
mount --bind "$root/var" /var
mount --bind "$root/usr/local" /usr/local
mount --bind "$root/opt" /opt
mount -t tmpfs -o mode=0755 tmpfs /run
# /run as boot (tmpfiles.d) and ssh.service (RuntimeDirectory=sshd) make it.
systemd-tmpfiles --create --prefix=/run
mkdir -m 0755 /run/sshd
ip link set lo up
for address in "$@"; do ip address add "$address/32" dev lo; done
echo ready
exec cat >/dev/null
"""
_CLONE_NEWNET = 0x40000000


def unavailable() -> str | None:
    """Why the real daemons cannot run on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "the daemons run in private mount and network namespaces, which needs root"
    missing = sorted({pkg for path, pkg in TOOLS.items() if not os.access(path, os.X_OK)})
    if missing:
        return f"Debian packages missing: {' '.join(missing)} (scripts/test.sh installs them)"
    probe = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip()}"
    return None


def skip_unless_runnable() -> pytest.MarkDecorator:
    """Skip where the daemons cannot run, except in CI: scripts/test.sh installs every
    package there and CI runs as root, so a daemon that cannot run is a failure."""
    reason = unavailable()
    return pytest.mark.skipif(reason is not None and not os.environ.get("CI"),
                              reason=str(reason))


def init_example(factory: pytest.TempPathFactory, target: Path, home: Path) -> Path:
    """A config repo holding the example fleet, as `reconciler init` makes it, and the
    empty HOME of the commands run on it."""
    home.mkdir(parents=True, exist_ok=True)
    return example_fleet(factory, target)


def run_checked(argv: Sequence[str], env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """Run argv to its end; an AssertionError with its output when it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          timeout=300, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n"
                             f"{done.stdout}{done.stderr}")
    return done


def _reconciler_checked(args: Sequence[str], home: Path) -> None:
    """`reconciler ARGS` in this process (the command, not a process, is under test here);
    an AssertionError with its output when it fails."""
    done = reconciler(args, env=git_env(home))
    if done.returncode != 0:
        raise AssertionError(f"reconciler {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}{done.stderr}")


def seed(factory: pytest.TempPathFactory, root: Path) -> None:
    """Lay out `root` as a Debian node with this host's packages installed, not configured."""
    root.mkdir(parents=True)
    run_checked(["cp", "-a", "/etc", str(root / "etc")])
    dpkg = root / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    shutil.copystat(DPKG, dpkg)
    run_checked(["cp", "-a", *(str(p) for p in DPKG.iterdir() if p.name != "info"), str(dpkg)])
    run_checked(["cp", "-al", str(_dpkg_info(factory)), str(dpkg / "info")])
    for path in ("/usr/local", "/opt", *PACKAGE_DIRS):
        _copy_directory(Path(path), root)
    (root / "var" / "run").symlink_to("/run")
    (root / "var" / "lock").symlink_to("/run/lock")
    (root / "var" / "tmp").mkdir()
    (root / "var" / "tmp").chmod(0o1777)


def _dpkg_info(factory: pytest.TempPathFactory) -> Path:
    """This test session's copy of the host's dpkg info directory (30 MB, most of a
    seed's cost), which every image hard-links: dpkg replaces those files by rename and
    never writes them in place, and no image links to the host's own files."""
    shared, _ = built_once(factory, "dpkg-info", _copy_dpkg_info)
    return shared / "info"


def _copy_dpkg_info(where: Path) -> dict[str, str]:
    run_checked(["cp", "-a", str(DPKG / "info"), str(where / "info")])
    return {}


def _copy_directory(path: Path, root: Path) -> None:
    """Create root/path and its missing parents, empty, with the host's owner and mode."""
    for directory in [*reversed(path.parents), path][1:]:
        target = root / directory.relative_to("/")
        if target.exists():
            continue
        info = directory.stat()
        target.mkdir()
        os.chown(target, info.st_uid, info.st_gid)
        target.chmod(info.st_mode & 0o7777)


def apply(repo: Path, node: str, root: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`reconciler apply` of `node` under `root`, every severity allowed (the database
    class holds even its config files otherwise); services and commands stay held, since
    reconciler never runs them under a root other than /. Fails if any action failed;
    the run's report is its stdout, as JSON."""
    done = reconciler(
        ["apply", "--repo", str(repo), "--node", node, "--root", str(root),
         "--max-severity", "reboot", "--format", "json",
         # DEMO ONLY: the example publishes its nodes' age identities (keys/demo-identities)
         "--identity", str(repo / "keys" / "demo-identities" / f"{node}.key")],
        env=git_env(home))
    if done.returncode & ~(2 | 8):
        raise AssertionError(f"apply {node} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def build_node(factory: pytest.TempPathFactory, node: str, root: Path) -> dict[str, Any]:
    """`root` made a node image of the example's `node`: seeded, then applied (a copy of
    this session's image, built the first time it is asked for). Returns the report of
    the apply that built it."""
    image, built = built_once(factory, f"image-{node}",
                              functools.partial(_build_image, factory, node))
    _copy_image(image / "root", root)
    report: dict[str, Any] = json.loads(built["report"])
    return report


def _build_image(factory: pytest.TempPathFactory, node: str, where: Path) -> dict[str, str]:
    repo = init_example(factory, where / "fleet", where / "home")
    seed(factory, where / "root")
    return {"report": apply(repo, node, where / "root", where / "home").stdout}


def _copy_image(image: Path, root: Path) -> None:
    """`cp -a image root`, except that the dpkg info directory is hard-linked, as seed()
    links it (dpkg replaces those files and never writes them in place)."""
    for depth in range(len(INFO.parts) + 1):
        inner = Path(*INFO.parts[:depth])
        source, target = image / inner, root / inner
        target.mkdir(parents=depth == 0)
        info = source.stat()
        os.chown(target, info.st_uid, info.st_gid)
        target.chmod(info.st_mode & 0o7777)
        inside = depth == len(INFO.parts)
        entries = [str(p) for p in source.iterdir() if inside or p.name != INFO.parts[depth]]
        if entries:
            run_checked(["cp", "-al" if inside else "-a", "--", *entries, str(target)])


def rendered_paths(repo: Path, node: str, out: Path, home: Path) -> list[str]:
    """The node paths of every file `reconciler render` produces for `node`."""
    _reconciler_checked(["render", "--repo", str(repo), "--out", str(out), node], home)
    return sorted("/" + str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())


class NodeNamespace:
    """Private mount, network and PID namespaces showing a node image at its real paths,
    with `addresses` on the loopback interface. Close it to end every process inside."""

    def __init__(self, root: Path, addresses: Sequence[str] = ()) -> None:
        self.root = root
        self._children: list[subprocess.Popen[bytes]] = []
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc",
             "--propagation", "private", "sh", "-c", _HOLDER, "holder", str(root), *addresses],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._holder.stdout is not None
        if self._holder.stdout.readline() != b"ready\n":
            _, err = self._holder.communicate(timeout=60)
            raise AssertionError(f"the node's namespaces could not be set up: {err.decode()}")
        children = Path(f"/proc/{self._holder.pid}/task/{self._holder.pid}/children")
        self.pid = int(children.read_text().split()[0])

    def __enter__(self) -> NodeNamespace:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End the namespace: its first process exits, and the kernel kills the rest."""
        if self._holder.returncode is not None:
            return
        self._holder.communicate(timeout=60)
        for child in self._children:
            child.wait(timeout=60)

    def _enter(self, argv: Sequence[str], user: str | None) -> list[str]:
        prefix = ["nsenter", f"--target={self.pid}", "--mount", "--net", "--pid", "--"]
        if user is not None:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        return [*prefix, *argv]

    def run(self, *argv: str, user: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a program inside, to its end; stdout and stderr captured."""
        return subprocess.run(self._enter(argv, user), capture_output=True, text=True,
                              check=False, timeout=timeout, cwd="/",
                              env={**NODE_ENV, **(env or {})})

    def start(self, *argv: str, log: IO[bytes], user: str | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running program inside, its output going to `log`."""
        child = subprocess.Popen(self._enter(argv, user), stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, cwd="/", env=NODE_ENV)
        self._children.append(child)
        return child

    def in_network(self, make: Callable[[], T]) -> T:
        """make() called on a thread that joined the namespace's network: the sockets it
        creates live there (and stay there when used from any other thread)."""
        box: list[tuple[bool, object]] = []

        def enter() -> None:
            try:
                with open(f"/proc/{self.pid}/ns/net", "rb") as netns:
                    if _libc().setns(netns.fileno(), _CLONE_NEWNET) != 0:
                        errno = ctypes.get_errno()
                        raise OSError(errno, os.strerror(errno))
                box.append((True, make()))
            except BaseException as exc:
                box.append((False, exc))

        thread = threading.Thread(target=enter)
        thread.start()
        thread.join()
        ok, value = box[0]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]

    def connect(self, address: str, port: int, timeout: float = 10) -> socket.socket:
        """A TCP connection from inside the namespace's network."""
        return self.in_network(lambda: socket.create_connection((address, port), timeout))

    def wait_listening(self, child: subprocess.Popen[bytes], address: str, port: int,
                       log: Path, limit: float = 120) -> None:
        """Return once address:port accepts connections; fail (with the log) if `child`
        exits first or `limit` seconds pass. Between tries it waits on the child's exit."""
        deadline = time.monotonic() + limit
        while True:
            try:
                self.connect(address, port, timeout=5).close()
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{address}:{port} still refuses after {limit}s "
                                         f"({exc}):\n{log.read_text(errors='replace')}") from None
            try:
                child.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            argv = cast(list[str], child.args)  # every child comes from start()
            raise AssertionError(f"{' '.join(argv)} exited {child.returncode} "
                                 f"before listening:\n{log.read_text(errors='replace')}")

    def listeners(self, port: int) -> set[str]:
        """The addresses with a TCP socket listening on `port` inside the namespace."""
        found: set[str] = set()
        for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
            lines = Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]
            for line in lines:
                fields = line.split()
                local, state = fields[1], fields[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    words = [int(address[i:i + 8], 16) for i in range(0, len(address), 8)]
                    packed = b"".join(struct.pack("<I", word) for word in words)
                    found.add(socket.inet_ntop(family, packed))
        return found


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
