"""Test helpers for the service backend: a small real daemon and a recording `systemctl`."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from reconciler.compile.nodeconfig import Origin, ServiceAction, ServiceCommands, Severity
from reconciler.system.interface import CommandResult
from reconciler.system.local import LocalSystem
from reconciler.system.process import SAFE_PATH

DAEMON = """
import os, signal, sys, time
pidfile, reloads, pids = sys.argv[1:4]
def on_hup(signum, frame):
    with open(reloads, "a") as log:
        log.write(f"{os.getpid()}\\n")
def on_term(signum, frame):
    os.unlink(pidfile)
    sys.exit(0)
signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, on_term)
with open(pids, "a") as log:
    log.write(f"{os.getpid()}\\n")
with open(pidfile + ".tmp", "w") as out:
    out.write(f"{os.getpid()}\\n")
os.replace(pidfile + ".tmp", pidfile)
while True:
    time.sleep(3600)
"""

# Shell: whether process $p still runs (a zombie waiting to be reaped has exited).
RUNNING = 'grep -qs "^State:[[:space:]]*[^Z[:space:]]" "/proc/$p/status"'

# Fake systemctl: records its arguments, keeps each unit's state in marker files beside it.
FAKE_SYSTEMCTL = """#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
unit=$2
if [ -e "$dir/offline" ]; then
    echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
    exit 1
fi
case "$1" in
  is-active)
    if [ -e "$dir/$unit.active" ]; then echo active; exit 0; fi
    echo inactive; exit 3;;
  is-enabled)
    if [ -e "$dir/$unit.enabled" ]; then echo enabled; exit 0; fi
    if [ -e "$dir/$unit.unit" ]; then echo disabled; exit 1; fi
    echo "Failed to get unit file state for $unit.service: No such file or directory" >&2
    exit 1;;
  start|restart|reload-or-restart) touch "$dir/$unit.active";;
  stop) rm -f "$dir/$unit.active";;
  enable) touch "$dir/$unit.unit" "$dir/$unit.enabled";;
  disable) rm -f "$dir/$unit.enabled";;
  *) echo "Unknown command verb $1." >&2; exit 1;;
esac
"""


def service_action(name: str, *, backend: str = "command", **fields: object) -> ServiceAction:
    """A ServiceAction as the compiler would produce it."""
    return ServiceAction.model_validate(
        {
            "id": f"service:{name}",
            "severity": Severity.RESTART,
            "origin": Origin(path="classes/test.xml", line=1),
            "declared_in": "test",
            "name": name,
            "backend": backend,
            **fields,
        }
    )


@dataclass
class Daemon:
    """A real daemon driven by shell commands, with its pidfile and logs under `directory`."""

    directory: Path

    @property
    def pidfile(self) -> Path:
        return self.directory / "demo.pid"

    @property
    def reloads(self) -> Path:
        return self.directory / "reloads"

    @property
    def flag(self) -> Path:
        return self.directory / "enabled"

    @property
    def started(self) -> Path:
        return self.directory / "started-pids"

    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def commands(self, **overrides: str | None) -> ServiceCommands:
        """Commands that start, check, stop, reload (SIGHUP) and enable the daemon."""
        script = self.directory / "daemon.py"
        script.write_text(DAEMON)
        pid = shlex.quote(str(self.pidfile))
        count = f"cat {shlex.quote(str(self.reloads))} 2>/dev/null | wc -l"
        launch = shlex.join(
            [sys.executable, str(script), str(self.pidfile), str(self.reloads), str(self.started)]
        )
        # Bounded polls (30 s): the daemon is a Python process, slow to start under load.
        wait_for = 'i=0; while {cond} && [ "$i" -lt 600 ]; do sleep 0.05; i=$((i + 1)); done'
        fields: dict[str, str | None] = {
            "start": f"{launch} </dev/null >/dev/null 2>&1 & "
            + wait_for.format(cond=f"[ ! -s {pid} ]")
            + f"; [ -s {pid} ]",
            "status": f'[ -s {pid} ] && kill -0 "$(cat {pid})" 2>/dev/null',
            # Like systemctl stop: done once the process has exited, not when it was told.
            "stop": f'p=$(cat {pid}) && kill "$p" || exit 1; '
            + wait_for.format(cond=RUNNING)
            + f"; ! {RUNNING} && [ ! -e {pid} ]",
            # Like `systemctl reload` of a Type=notify-reload unit: done once the daemon
            # has reloaded (logged it), not when it was sent SIGHUP.
            "reload": f"n=$({count}) && kill -HUP \"$(cat {pid})\" || exit 1; "
            + wait_for.format(cond=f'[ "$({count})" -le "$n" ]')
            + f'; [ "$({count})" -gt "$n" ]',
            "enable": f"touch {shlex.quote(str(self.flag))}",
            "disable": f"rm -f {shlex.quote(str(self.flag))}",
            "is_enabled": f"test -e {shlex.quote(str(self.flag))}",
        }
        fields.update(overrides)
        return ServiceCommands.model_validate(fields)

    def kill_all(self) -> None:
        """Kill every daemon process this test started that is still alive."""
        if not self.started.exists():
            return
        for word in self.started.read_text().split():
            with contextlib.suppress(OSError):  # already gone
                # Only ours: a recycled pid would not carry this test's pidfile path.
                if str(self.pidfile).encode() in Path(f"/proc/{word}/cmdline").read_bytes():
                    os.kill(int(word), signal.SIGKILL)


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, with no command line left, is not)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


class FakeBinSystem(LocalSystem):
    """A LocalSystem whose commands find the programs of `bin_dir` first on PATH."""

    def __init__(self, root: str, bin_dir: Path, *, host_commands: bool) -> None:
        super().__init__(root, host_commands=host_commands)
        self._path = f"{bin_dir}:{SAFE_PATH}"

    def run(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        mutates: bool = True,
    ) -> CommandResult:
        return super().run(
            command,
            timeout=timeout,
            cwd=cwd,
            env={"PATH": self._path, **(env or {})},
            mutates=mutates,
        )


def install_fake_systemctl(bin_dir: Path) -> Path:
    """Put the recording systemctl in `bin_dir`; returns the file its calls are logged to."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = bin_dir / "systemctl"
    program.write_text(FAKE_SYSTEMCTL)
    program.chmod(0o755)
    return bin_dir / "calls"
