"""Running one command on the host: its own session, a minimal environment, a timeout
that takes the whole process group down, and bounded output (the last bytes kept).
"""

from __future__ import annotations

import errno
import math
import os
import pwd
import selectors
import shlex
import signal
import subprocess
import time
from contextlib import suppress

from reconciler.system.interface import CommandResult

OUTPUT_LIMIT = 64 * 1024  # bytes of each output stream kept (the last ones)
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of a timed-out process group
DRAIN_GRACE = 0.5  # seconds to keep reading output after the command itself exited
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def describe(command: str | list[str]) -> str:
    """A command as one line of shell, for messages and logs."""
    return command if isinstance(command, str) else shlex.join(command)


def run_command(
    command: str | list[str],
    *,
    root: str,
    timeout: float | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run a command on the host: a str through /bin/sh -c, a list directly.

    It runs in its own session with stdin from /dev/null, a minimal environment
    (PATH, LANG, HOME) plus `env` plus RECONCILER_ROOT=`root`, in host directory `cwd`
    (default: `root`). On timeout the whole process group gets SIGTERM, then SIGKILL
    after KILL_GRACE seconds. Background processes the command leaves behind are not
    waited for once it exits (nor killed, unless it timed out).
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    if not argv:
        return CommandResult(127, "", "empty command")
    full_env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": _home()}
    full_env.update(env or {})
    full_env["RECONCILER_ROOT"] = root
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd if cwd is not None else root,
            env=full_env,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        code = 127 if error.errno == errno.ENOENT else 126
        return CommandResult(code, "", f"cannot start {argv[0]!r}: {error}")
    return _collect(process, timeout)


def _home() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return "/"


class _Tail:
    """The last OUTPUT_LIMIT bytes of a stream, and how many were dropped before them."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - OUTPUT_LIMIT
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        return f"[{self.dropped} earlier bytes dropped]\n{text}" if self.dropped else text


def _exited(pid: int) -> bool:
    """Has the child exited? It is not reaped, so its pid (= process group id) stays reserved."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pump(selector: selectors.BaseSelector, tails: dict[int, _Tail], until: float) -> None:
    """Read whatever output arrives within a short step (shorter once both pipes closed)."""
    step = 0.1 if selector.get_map() else 0.005
    wait = max(0.0, min(step, until - time.monotonic()))
    if not selector.get_map():
        time.sleep(wait)
        return
    for key, _ in selector.select(wait):
        chunk = os.read(key.fd, 65536)
        if chunk:
            tails[key.fd].add(chunk)
        else:
            selector.unregister(key.fd)


def _collect(process: subprocess.Popen[bytes], timeout: float | None) -> CommandResult:
    """Read both output streams until the command is done, enforcing the timeout."""
    if process.stdout is None or process.stderr is None:
        raise ValueError("_collect needs a process started with both output pipes")
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    tails = {out_fd: _Tail(), err_fd: _Tail()}
    selector = selectors.DefaultSelector()
    for fd in tails:
        selector.register(fd, selectors.EVENT_READ)
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    exited_at: float | None = None
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and _exited(process.pid):
                exited_at = now
            if exited_at is not None and (not selector.get_map() or now - exited_at > DRAIN_GRACE):
                break
            if now >= deadline:
                timed_out = True
                break
            _pump(selector, tails, deadline)
        if timed_out:
            _kill_group(process.pid, signal.SIGTERM)
            grace_end = time.monotonic() + KILL_GRACE
            while time.monotonic() < grace_end and not (
                _exited(process.pid) and not selector.get_map()
            ):
                _pump(selector, tails, grace_end)
            # The leader is still unreaped, so its pgid cannot have been reused.
            _kill_group(process.pid, signal.SIGKILL)
            drain_end = time.monotonic() + DRAIN_GRACE
            while selector.get_map() and time.monotonic() < drain_end:
                _pump(selector, tails, drain_end)
    except BaseException:
        # Interrupted (e.g. Ctrl-C): take the whole command down with us.
        _kill_group(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    returncode = process.wait()
    return CommandResult(
        returncode=returncode,
        stdout=tails[out_fd].text(),
        stderr=tails[err_fd].text(),
        timed_out=timed_out,
    )
