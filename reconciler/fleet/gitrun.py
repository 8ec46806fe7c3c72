"""Run git for the fleet reports: bytes in, bytes out, a bounded time, no prompts.

A command that outlives its timeout is killed with its whole process group (an ssh
transport included), so publishing or reading reports can never hang a caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Network operations never wait for a person: no credential or passphrase prompts.
NETWORK_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true",
               "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}


@dataclass(frozen=True)
class Done:
    """How a git command ended."""

    code: int
    out: bytes
    err: bytes
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.timed_out

    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def why(self) -> str:
        """The last lines of git's complaint, for one log line."""
        if self.timed_out:
            return "timed out"
        lines = [line.strip() for line in self.err.decode("utf-8", "replace").splitlines()
                 if line.strip()]
        return " / ".join(lines[-3:]) or f"git exited {self.code}"


def git(
    git_dir: str | os.PathLike[str] | None, *args: str, stdin: bytes | None = None,
    timeout: float | None = None, env: Mapping[str, str] | None = None,
    config: Sequence[str] = (),
) -> Done:
    """`git [--git-dir DIR] [-c ...] ARGS`, killed with its children after `timeout`."""
    command = ["git"]
    if git_dir is not None:
        command += ["--git-dir", os.fspath(git_dir)]
    for setting in config:
        command += ["-c", setting]
    process = subprocess.Popen(
        [*command, *args], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        out, err = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        out, err = process.communicate()
        return Done(-1, out, err, timed_out=True)
    return Done(process.returncode, out, err)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def init_bare(path: Path) -> None:
    """Create a bare repository at `path` if there is none (built beside it, renamed in,
    so a killed process never leaves half a repository)."""
    if (path / "HEAD").is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f"{path.name}.new-{os.getpid()}")
    done = git(None, "init", "--quiet", "--bare", str(building))
    if not done.ok:
        raise OSError(f"git init {building}: {done.why()}")
    git(building, "config", "gc.autoDetach", "false")  # no git process outlives its caller
    try:
        os.rename(building, path)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not (path / "HEAD").is_file():
            raise
