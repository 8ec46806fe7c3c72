"""Checks that read a node's files, not the host's: a command confined to a node root,
optionally with a candidate configuration laid over it.

Under a root other than `/`, a checker such as `nginx -t` run on the host would read the
host's `/etc/nginx` (its absolute includes, `sites-enabled/*`). So it runs in a private
mount namespace (bubblewrap) where the root's files are at their real paths:

- a root with programs of its own (`usr/bin` or `bin`: a chroot, an image being built)
  becomes `/` itself, and must hold the checker;
- a root without (configuration laid over this host's programs, as the example's test
  images are) has each of its top-level directories bound over the host's, `usr`'s
  subdirectories one by one (`usr/local`), the rest of the host read-only — once it
  has its users (`etc/passwd`): before, it is a root being built, and is not checked.

Either way `/dev`, `/proc`, `/tmp` and `/run` are private. Without bubblewrap, a root
with its own programs is entered with `chroot` when running as root; anything else
cannot be confined, and the check says so instead of reading the wrong files.

A `Candidate` (files not yet written: audit, `plan --check`) is bound read-only over its
real paths, directories that lack one of its entries rebuilt on a tmpfs from what they
hold, and purged directories holding only what it declares; nothing is written then
(scratch tmpfs for logs and caches).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reconciler.system.interface import CommandResult, System
from reconciler.system.process import SAFE_PATH

PRIVATE = ("dev", "proc", "sys", "run", "tmp")  # never taken from a root or the host
# Writable and thrown away when a candidate is checked: empty, keeping their
# subdirectories (a checker may create /var/lib/nginx/body, open /var/log/nginx/error.log).
SCRATCH = ("/var/lib", "/var/log", "/var/cache", "/var/tmp")


class Unconfined(Exception):
    """Why a command cannot be confined to a root: it must not run on the host instead."""


@dataclass(frozen=True)
class Candidate:
    """A configuration not on the node yet: files (node path, bytes), symlinks (node
    path, target), directories that hold only what is declared (purged), and declared
    directories a checker may need in the scratch area (a cache directory nginx -t
    wants to find)."""

    files: tuple[tuple[str, bytes], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    emptied: tuple[str, ...] = ()
    scratch_dirs: tuple[str, ...] = ()  # declared directories under SCRATCH, made there


@contextmanager
def staged(candidate: Candidate) -> Iterator[str]:
    """The candidate's files written under a private host directory, at their node paths."""
    with tempfile.TemporaryDirectory(prefix="reconciler-candidate-") as stage:
        for path, content in candidate.files:
            host = os.path.join(stage, path.lstrip("/"))
            os.makedirs(os.path.dirname(host), mode=0o700, exist_ok=True)
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            os.chmod(host, 0o644)
        yield stage


def has_own_programs(root: str) -> bool:
    """Whether `root` holds a system of its own (`usr/bin` or `bin`), not only configuration."""
    return any(os.path.isdir(os.path.join(root, part)) and
               not os.path.islink(os.path.join(root, part)) for part in ("usr/bin", "bin"))


def program(command: str) -> str:
    """The program a shell command starts with (after `VAR=value` assignments), or ""
    when its first word is shell syntax rather than a program name."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    words = [word for word in words if not _assignment(word)] or [""]
    return words[0] if re.fullmatch(r"[A-Za-z0-9_./+-]+", words[0]) else ""


def confine(root: str, command: str, cwd: str = "/", candidate: Candidate | None = None,
            stage: str | None = None) -> list[str]:
    """The argv that runs shell `command` inside `root` in node directory `cwd`, with a
    `candidate` (its files under host directory `stage`) laid over it read-only.
    Raises Unconfined when it cannot be done."""
    root = os.path.abspath(root)
    bwrap = shutil.which("bwrap", path=SAFE_PATH)
    own = root != "/" and has_own_programs(root)
    name = program(command)
    if own and name and not _found_in(root, name):
        raise Unconfined(f"{root} has no {name or 'program'} of its own to check with")
    if not own and name and not name.startswith("/") and \
            shutil.which(name, path=SAFE_PATH) is None:
        raise Unconfined(f"{'this host' if root == '/' else f'neither {root} nor this host'} "
                         f"has {name}")
    if bwrap is None:
        if own and os.geteuid() == 0 and candidate is None:
            return ["chroot", root, "/bin/sh", "-c", f"cd {shlex.quote(cwd)} && {command}"]
        raise Unconfined("bubblewrap (bwrap) is not installed: a check under another root "
                         "or of a candidate needs it (Debian package bubblewrap)")
    view = _View(root, own, writable=candidate is None)
    argv = [bwrap, "--die-with-parent", "--unshare-ipc", "--unshare-uts", *view.mounts,
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    if candidate is not None:
        assert stage is not None, "a candidate's files are staged first"
        argv += _scratch(view)
        argv += [arg for path in candidate.scratch_dirs for arg in ("--dir", path)
                 if any(path.startswith(top + "/") for top in SCRATCH)]
        argv += _laid_over(view, candidate, stage)
    return [*argv, "--chdir", cwd, "/bin/sh", "-c", command]


def run_in_root(system: System, command: str, *, timeout: float, cwd: str = "/") -> \
        CommandResult:
    """Run a read-only check on the node: directly when its root is `/`, else confined to
    the root (raises Unconfined when it cannot be)."""
    if system.root == "/":
        return system.run(command, timeout=timeout, cwd=cwd, mutates=False)
    _a_system(system.root)
    return system.run(confine(system.root, command, cwd), timeout=timeout, mutates=False)


def run_candidate(system: System, command: str, candidate: Candidate, *, timeout: float) -> \
        CommandResult:
    """Run a check against `candidate` laid over the node (raises Unconfined)."""
    if system.root != "/":
        _a_system(system.root)
    with staged(candidate) as stage:
        return system.run(confine(system.root, command, "/", candidate, stage),
                          timeout=timeout, mutates=False)


def _a_system(root: str) -> None:
    """A root of configuration only is checked with this host's programs once it is a
    system: it has its users (`etc/passwd`, which nginx, sshd and crontab look up). Before,
    it is a root being built, without the files of packages not installed there yet; its
    checks would fail saying nothing about the files, so they are not run, and say why."""
    if not has_own_programs(root) and not os.path.isfile(os.path.join(root, "etc/passwd")):
        raise Unconfined(f"{root} is not a system yet (no programs of its own, no etc/passwd)")


class _View:
    """What the sandbox shows at each path before a candidate: its mounts, and the host
    path each sandbox path comes from."""

    def __init__(self, root: str, own: bool, writable: bool) -> None:
        self.root = root
        bind = "--bind" if writable else "--ro-bind"
        self.bound: list[str] = []  # sandbox paths that come from the root
        if own:
            self.mounts = [bind, root, "/"]
            self.bound = ["/"]
            return
        self.mounts = ["--ro-bind", "/", "/"]
        if root == "/":
            return
        for part in _overlaid(root):
            self.mounts += [bind, os.path.join(root, part), "/" + part]
            self.bound.append("/" + part)

    def source(self, path: str) -> str:
        """The host path the sandbox's `path` shows."""
        for top in self.bound:
            if path == top or path.startswith(top.rstrip("/") + "/"):
                return os.path.join(self.root, path.lstrip("/"))
        return path


def _laid_over(view: _View, candidate: Candidate, stage: str) -> list[str]:
    """bwrap arguments laying the candidate over the view: a directory lacking one of its
    entries (or emptied) rebuilt on a tmpfs from what it holds, parents first, missing
    directories made; then the files (bound read-only) and links themselves."""
    entries = {path: ("file", os.path.join(stage, path.lstrip("/")))
               for path, _ in candidate.files}
    entries.update({path: ("link", target) for path, target in candidate.links})
    made: set[str] = set()
    rebuilt: set[str] = set()
    for path in [*entries, *candidate.emptied]:
        parent = os.path.dirname(path)
        while not os.path.isdir(view.source(parent)):
            made.add(parent)
            parent = os.path.dirname(parent)
        if parent != os.path.dirname(path):
            rebuilt.add(parent)  # it gains a directory
        elif path in candidate.emptied:
            (rebuilt if os.path.isdir(view.source(path)) else made).add(path)
        elif entries[path][0] == "link" or not os.path.isfile(view.source(path)) or \
                os.path.islink(view.source(path)):
            rebuilt.add(parent)  # a new entry, or one of another kind
    args: list[str] = []
    for directory in sorted(rebuilt | made, key=lambda p: (p.count("/"), p)):
        if directory in made:
            args += ["--dir", directory]
            continue
        args += ["--tmpfs", directory]
        if directory in candidate.emptied:
            continue
        for name in sorted(os.listdir(view.source(directory))):
            path = os.path.join(directory, name)
            if path in entries:
                continue
            args += ["--dir", path] if path in rebuilt else _as_it_is(view.source(path), path)
    for path, (kind, what) in sorted(entries.items()):
        args += ["--symlink", what, path] if kind == "link" else ["--ro-bind", what, path]
    return args


def _scratch(view: _View) -> list[str]:
    """Empty writable copies of the SCRATCH directories, their subdirectories kept."""
    args: list[str] = []
    for path in SCRATCH:
        source = view.source(path)
        if not os.path.isdir(source) or os.path.islink(source):
            continue
        args += ["--tmpfs", path]
        for entry in sorted(os.scandir(source), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                args += ["--dir", os.path.join(path, entry.name)]
    return args


def _as_it_is(source: str, path: str) -> list[str]:
    """An entry of a rebuilt directory, shown as it is in the view."""
    if os.path.islink(source):
        return ["--symlink", os.readlink(source), path]
    return ["--ro-bind", source, path]


def _overlaid(root: str) -> list[str]:
    """The top-level directories of a configuration root bound over the host's (`usr`'s
    subdirectories one by one, so the host's programs stay)."""
    found: list[str] = []
    for top in sorted(os.listdir(root)):
        if top in PRIVATE:
            continue
        parts = [f"usr/{sub}" for sub in sorted(os.listdir(os.path.join(root, "usr")))] \
            if top == "usr" and os.path.isdir(os.path.join(root, "usr")) else [top]
        found += [part for part in parts
                  if os.path.isdir(os.path.join(root, part))
                  and not os.path.islink(os.path.join(root, part))
                  and os.path.isdir(os.path.join("/", part))]
    return found


def _found_in(root: str, name: str) -> bool:
    """Whether program `name` is in `root` (by its absolute path, or on the usual PATH)."""
    if not name:
        return False
    candidates = [name] if name.startswith("/") else \
        [os.path.join(directory, name) for directory in SAFE_PATH.split(":")]
    for candidate in candidates:
        host = os.path.join(root, candidate.lstrip("/"))
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return True
    return False


def _assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier()
