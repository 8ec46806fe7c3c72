"""A file action's `validate=` command, run on the new content before it replaces a file.

`%s` stands for the candidate, `%%` for a percent sign. The candidate is checked under
its real base name, hard-linked into a private directory beside the target (so a
checker that reads the name, like `systemd-analyze verify`, sees `foo.service`), with
the target's directory as working directory (so relative paths resolve as on the live
file). Under a root other than `/` the command runs confined to the root (confine.py),
reading the node's files and never the host's; where that cannot be done the file is
written and said to be "not validated".
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from reconciler.system.candidate import fill
from reconciler.system.confine import Unconfined, run_in_root
from reconciler.system.interface import System, ValidationFailed

VALIDATE_TIMEOUT = 120.0  # seconds a validate command may take


CHECK_DIR = re.compile(r"\.reconciler-check-[0-9a-f]{8}")  # real_name's private directories


@contextmanager
def real_name(dir_fd: int, temp: str, name: str) -> Iterator[str]:
    """The temporary file `temp` of directory `dir_fd`, also as `.reconciler-check-X/name`
    (a private directory beside it); yields that relative path and removes both links
    of it after."""
    for _ in range(100):
        private = f".reconciler-check-{secrets.token_hex(4)}"
        try:
            os.mkdir(private, 0o700, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free private directory name for checking {name}")
    try:
        private_fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=dir_fd)
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=private_fd)
            try:
                yield f"{private}/{name}"
            finally:
                with suppress(OSError):
                    os.unlink(name, dir_fd=private_fd)
        finally:
            os.close(private_fd)
    finally:
        with suppress(OSError):
            os.rmdir(private, dir_fd=dir_fd)


def validate(system: System, command: str, node: str, candidate: str, *,
             secret: bool) -> str | None:
    """Run `command` on `candidate` (a node path) for the file at node path `node`.

    Returns None when it passed, or why it was not validated (another root it cannot
    be confined to); raises ValidationFailed when it rejected the content.
    """
    try:
        result = run_in_root(system, fill(command, candidate), timeout=VALIDATE_TIMEOUT,
                             cwd=os.path.dirname(node))
    except Unconfined as why:
        return f"not validated: {why}"
    if result.returncode == 0 and not result.timed_out:
        return None
    how = "timed out" if result.timed_out else f"exited {result.returncode}"
    output = "" if secret else (result.stdout + result.stderr).strip()
    shown = "output withheld: secret file" if secret else (output[-2000:] or "no output")
    raise ValidationFailed(f"validation of {node} failed: {command!r} {how}: {shown}",
                           command=command, output=output)
