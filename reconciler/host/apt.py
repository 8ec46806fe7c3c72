"""APT beyond installing: refresh the package lists, ask whether the lists know a
package, hold and unhold packages.

On "/" these are plain apt-get, apt-cache and apt-mark. Under another root they get
apt's own root options (`-o Dir=ROOT`, that root's dpkg status and admin directory), and
`apt-get update` reads the root's sources with their `Signed-By` keyrings mapped under
the root, so a source there is verified with the keyring reconciler wrote there.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from reconciler.host.dpkg import ADMIN_DIR, APT_ENV, PackageError
from reconciler.system.interface import System

UPDATE_TIMEOUT = 300.0
QUERY_TIMEOUT = 60.0
SOURCES_LIST = "/etc/apt/sources.list"
SOURCES_PARTS = "/etc/apt/sources.list.d"
# Directories apt-get update needs under a root; on "/" the apt package ships them.
STATE_DIRS = ("/var/lib/apt/lists/partial", "/var/cache/apt/archives/partial")

_SIGNED_BY_FIELD = re.compile(r"^(Signed-By:[ \t]*)(/\S+)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_SIGNED_BY_OPTION = re.compile(r"(signed-by=)(/[^\s,\]]+)")


def root_options(system: System) -> list[str]:
    """apt's options that confine it to the system's root (none on "/")."""
    if system.root == "/":
        return []
    return ["-o", f"Dir={system.host_path('/')}/",
            "-o", f"Dir::State::status={system.host_path(f'{ADMIN_DIR}/status')}",
            "-o", f"DPkg::Options::=--admindir={system.host_path(ADMIN_DIR)}"]


def update(system: System, timeout: float = UPDATE_TIMEOUT) -> None:
    """`apt-get update`, bounded by `timeout`; raise PackageError when it fails."""
    if system.root != "/":
        for directory in STATE_DIRS:
            _makedirs(system, directory)
    with _sources(system) as sources:
        result = system.run(["apt-get", "-q", *root_options(system), *sources, "update"],
                            timeout=timeout, env=APT_ENV, mutates=True)
    if result.timed_out:
        raise PackageError("apt-get update", f"timed out after {timeout:g}s", result.stderr)
    if result.returncode != 0:
        raise PackageError("apt-get update", f"exited {result.returncode}", result.stderr)


def unknown(system: System, names: Sequence[str]) -> list[str]:
    """The packages among `names` that the package lists offer no version of."""
    if not names:
        return []
    result = system.run(["apt-cache", "-q", *root_options(system), "policy", *names],
                        timeout=QUERY_TIMEOUT, mutates=False)
    if result.timed_out or result.returncode != 0:
        raise PackageError(names[0], "apt-cache policy failed", result.stderr)
    known = set()
    current = None
    for line in result.stdout.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif current is not None and line.strip().startswith("Candidate:") and \
                line.split(":", 1)[1].strip() != "(none)":
            known.add(current)
    return [name for name in names if name not in known]


def mark(system: System, name: str, hold: bool) -> None:
    """`apt-mark hold` or `unhold` one installed package."""
    verb = "hold" if hold else "unhold"
    result = system.run(["apt-mark", *root_options(system), verb, name],
                        timeout=QUERY_TIMEOUT, mutates=True)
    if result.timed_out or result.returncode != 0:
        raise PackageError(name, f"apt-mark {verb} failed", result.stderr)


def _makedirs(system: System, path: str) -> None:
    missing = []
    while path not in ("/", "") and system.lstat(path) is None:
        missing.append(path)
        path = posixpath.dirname(path)
    for directory in reversed(missing):
        system.mkdir(directory, 0o755, None, None)


@contextmanager
def _sources(system: System) -> Iterator[list[str]]:
    """Options pointing apt at the root's sources with keyring paths mapped under the
    root, as scratch files (nothing is written to the node); none on "/"."""
    if system.root == "/":
        yield []
        return
    deb822, one_line = [], []
    if system.lstat(SOURCES_LIST) is not None:
        one_line.append(system.read(SOURCES_LIST).decode())
    if system.lstat(SOURCES_PARTS) is not None:
        for name in system.listdir(SOURCES_PARTS):
            path = f"{SOURCES_PARTS}/{name}"
            live = system.lstat(path)
            if live is None or live.kind != "file":
                continue
            if name.endswith(".sources"):
                deb822.append(system.read(path).decode())
            elif name.endswith(".list"):
                one_line.append(system.read(path).decode())

    def mapped(pattern: re.Pattern[str], text: str) -> str:
        return pattern.sub(lambda m: m.group(1) + system.host_path(m.group(2)), text)

    stanzas = "\n\n".join(mapped(_SIGNED_BY_FIELD, text.strip()) for text in deb822)
    lines = "\n".join(mapped(_SIGNED_BY_OPTION, text) for text in one_line)
    with ExitStack() as stack:
        parts = stack.enter_context(system.scratch_file("root.sources", f"{stanzas}\n".encode()))
        listed = stack.enter_context(system.scratch_file("sources.list", f"{lines}\n".encode()))
        yield ["-o", f"Dir::Etc::sourceparts={posixpath.dirname(parts)}",
               "-o", f"Dir::Etc::sourcelist={listed}"]
