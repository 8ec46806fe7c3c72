"""Checks that read a node's files, not the host's: a command confined to a node root.

Under a root other than `/`, a checker such as `nginx -t` run on the host would read the
host's `/etc/nginx` (its absolute includes, `sites-enabled/*`). So it runs in a private
mount namespace (bubblewrap) where the root's files are at their real paths:

- a root with programs of its own (`usr/bin` or `bin`: a chroot, an image being built)
  becomes `/` itself, and must hold the checker;
- a root without (configuration laid over this host's programs, as the example's test
  images are) has each of its top-level directories bound over the host's, `usr`'s
  subdirectories one by one (`usr/local`), the rest of the host read-only.

Either way `/dev`, `/proc`, `/tmp` and `/run` are private. Without bubblewrap, a root
with its own programs is entered with `chroot` when running as root; anything else
cannot be confined, and the check says so instead of reading the wrong files.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence

from reconciler.system.interface import CommandResult, System
from reconciler.system.process import SAFE_PATH

PRIVATE = ("dev", "proc", "sys", "run", "tmp")  # never taken from a root or the host


class Unconfined(Exception):
    """Why a command cannot be confined to a root: it must not run on the host instead."""


def has_own_programs(root: str) -> bool:
    """Whether `root` holds a system of its own (`usr/bin` or `bin`), not only configuration."""
    return any(os.path.isdir(os.path.join(root, part)) and
               not os.path.islink(os.path.join(root, part)) for part in ("usr/bin", "bin"))


def program(command: str) -> str:
    """The program a shell command starts with (after `VAR=value` assignments)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    words = [word for word in words if not _assignment(word)] or [""]
    return words[0]


def confine(root: str, command: str, cwd: str = "/",
            binds: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The argv that runs shell `command` inside `root` in node directory `cwd`, with
    host files bound read-only over node paths (`binds`: (host path, node path)).
    Raises Unconfined when it cannot be done."""
    root = os.path.abspath(root)
    bwrap = shutil.which("bwrap", path=SAFE_PATH)
    own = has_own_programs(root)
    name = program(command)
    if own and not _found_in(root, name):
        raise Unconfined(f"{root} has no {name or 'program'} of its own to check with")
    if not own and root != "/" and name and shutil.which(name, path=SAFE_PATH) is None:
        raise Unconfined(f"neither {root} nor this host has {name}")
    if bwrap is None:
        if own and os.geteuid() == 0 and not binds:
            return ["chroot", root, "/bin/sh", "-c", f"cd {shlex.quote(cwd)} && {command}"]
        raise Unconfined("bubblewrap (bwrap) is not installed: a check under another root "
                         "needs it (Debian package bubblewrap)")
    argv = [bwrap, "--die-with-parent", "--unshare-ipc", "--unshare-uts"]
    if own:
        argv += ["--bind", root, "/"]
    else:
        argv += ["--ro-bind", "/", "/"]
        argv += _overlay(root) if root != "/" else []
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    for source, target in binds:
        argv += ["--ro-bind", source, target]
    return [*argv, "--chdir", cwd, "/bin/sh", "-c", command]


def run_in_root(system: System, command: str, *, timeout: float, cwd: str = "/") -> \
        CommandResult:
    """Run a read-only check on the node: directly when its root is `/`, else confined to
    the root (raises Unconfined when it cannot be)."""
    if system.root == "/":
        return system.run(command, timeout=timeout, cwd=cwd, mutates=False)
    return system.run(confine(system.root, command, cwd), timeout=timeout, mutates=False)


def _overlay(root: str) -> list[str]:
    """Bind each top-level directory of a configuration root over the host's (`usr`'s
    subdirectories one by one, so the host's programs stay)."""
    binds: list[str] = []
    for top in sorted(os.listdir(root)):
        if top in PRIVATE:
            continue
        parts = [f"usr/{sub}" for sub in sorted(os.listdir(os.path.join(root, "usr")))] \
            if top == "usr" and os.path.isdir(os.path.join(root, "usr")) else [top]
        for part in parts:
            source = os.path.join(root, part)
            if os.path.isdir(source) and not os.path.islink(source) and \
                    os.path.isdir(os.path.join("/", part)):
                binds += ["--bind", source, "/" + part]
    return binds


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
