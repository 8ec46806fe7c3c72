"""Run a command as a real process on a pseudo-terminal of a given width, for the few
tests about what only a terminal shows (tables, progress): everything else reads the
command's output through a pipe, as scripts and log collectors do."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(argv: Sequence[str | Path], columns: int = 80, cwd: Path | None = None,
                env: Mapping[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    """Exit status and everything the process wrote to its terminal (stdout and stderr),
    colours and cursor moves removed, lines ended by a plain newline."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
    environment["TERM"] = "xterm-256color"
    process = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave, stderr=slave,
                               cwd=cwd, env=environment, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the process closed its end of the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return code, _ESCAPES.sub("", text).replace("\r", "\n")
