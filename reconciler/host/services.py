"""Services: probe and drive them through systemd or through the commands a class declares.

Every call goes through the `System` interface with a short timeout. When the system
does not run host commands (a --root other than "/"), host services are never touched:
probing reports "unknown" and changing them is refused, so the caller reports what it
would do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from reconciler.compile.nodeconfig import ServiceAction, ServiceCommands
from reconciler.system.interface import CommandResult, System, ToolError

DEFAULT_TIMEOUT = 90.0

Verb = Literal["start", "stop", "reload", "restart", "enable", "disable"]

_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]*")
_SHELL_COULD_NOT_RUN = frozenset({126, 127})  # not executable, command not found
_SYSTEMCTL_VERBS = {
    "start": "start",
    "stop": "stop",
    "reload": "reload-or-restart",
    "restart": "restart",
    "enable": "enable",
    "disable": "disable",
}


class ServiceError(ToolError):
    """A service could not be probed or driven; carries the command's own words."""

    kind = "service"

    @property
    def service(self) -> str:
        return self.name


@dataclass(frozen=True)
class ServiceState:
    """What a service is doing now; None means unknown, and `note` says why."""

    running: bool | None
    enabled: bool | None
    note: str | None = None


def probe(
    system: System, action: ServiceAction, *, timeout: float = DEFAULT_TIMEOUT
) -> ServiceState:
    """Whether the service runs and starts at boot. Read-only: runs even in audit mode."""
    if not system.runs_host_commands:
        return ServiceState(None, None, f"host services are not probed under root {system.root}")
    if action.backend == "systemd":
        _check_unit_name(action.name)
        return ServiceState(
            running=_systemd_active(system, action.name, timeout),
            enabled=_systemd_enabled(system, action.name, timeout),
        )
    commands = _commands(action)
    running = _exit_status(system, action.name, "status", commands.status, timeout) == 0
    enabled = None
    if commands.is_enabled is not None:
        enabled = _exit_status(system, action.name, "is_enabled", commands.is_enabled, timeout) == 0
    return ServiceState(running=running, enabled=enabled)


def drive(
    system: System, action: ServiceAction, verb: Verb, *, timeout: float = DEFAULT_TIMEOUT
) -> CommandResult:
    """Start, stop, reload, restart, enable or disable the service. A command-backend
    reload falls back to restart, and restart to stop then start, when not declared."""
    if not system.runs_host_commands:
        raise ServiceError(
            action.name, f"refusing to {verb} a host service while working under root {system.root}"
        )
    if action.backend == "systemd":
        _check_unit_name(action.name)
        command = ["systemctl", _SYSTEMCTL_VERBS[verb], action.name]
        return _checked(system, action.name, verb, command, timeout)
    commands = _commands(action)
    declared = {
        "start": commands.start,
        "stop": commands.stop,
        "reload": commands.reload or commands.restart,
        "restart": commands.restart,
        "enable": commands.enable,
        "disable": commands.disable,
    }[verb]
    if declared is not None:
        return _checked(system, action.name, verb, declared, timeout)
    if verb in ("reload", "restart"):
        stopped = _checked(system, action.name, "stop", commands.stop, timeout)
        started = _checked(system, action.name, "start", commands.start, timeout)
        return CommandResult(
            started.returncode, stopped.stdout + started.stdout, stopped.stderr + started.stderr
        )
    raise ServiceError(action.name, f"no {verb} command is declared for this service")


def _checked(
    system: System, name: str, verb: str, command: str | list[str], timeout: float
) -> CommandResult:
    result = system.run(command, timeout=timeout, mutates=True)
    if result.timed_out:
        raise ServiceError(name, f"{verb} timed out after {timeout:g}s", result.stderr)
    if result.returncode != 0:
        raise ServiceError(name, f"{verb} failed (exit {result.returncode})", result.stderr)
    return result


def _exit_status(system: System, name: str, which: str, command: str, timeout: float) -> int:
    """The exit status of a read-only check command; one that could not run is an error."""
    result = system.run(command, timeout=timeout, mutates=False)
    if result.timed_out:
        raise ServiceError(name, f"{which} command timed out after {timeout:g}s", result.stderr)
    if result.returncode in _SHELL_COULD_NOT_RUN:
        raise ServiceError(
            name, f"{which} command could not run (exit {result.returncode})", result.stderr
        )
    return result.returncode


def _systemd_active(system: System, name: str, timeout: float) -> bool:
    """`systemctl is-active`: exit 0 is running; a state word with another exit is stopped."""
    result = _systemctl_query(system, name, "is-active", timeout)
    if result.returncode == 0:
        return True
    if result.stdout.strip():
        return False
    raise ServiceError(
        name, f"systemctl is-active failed (exit {result.returncode})", result.stderr
    )


def _systemd_enabled(system: System, name: str, timeout: float) -> bool:
    """`systemctl is-enabled`: exit 0 (enabled, static, alias...) is enabled.

    A state word with another exit (disabled, masked, not-found) is not enabled, and so
    is a unit file that does not exist yet (its package may still be to be installed).
    """
    result = _systemctl_query(system, name, "is-enabled", timeout)
    if result.returncode == 0:
        return True
    if result.stdout.strip() or "No such file or directory" in result.stderr:
        return False
    raise ServiceError(
        name, f"systemctl is-enabled failed (exit {result.returncode})", result.stderr
    )


def _systemctl_query(system: System, name: str, verb: str, timeout: float) -> CommandResult:
    result = system.run(["systemctl", verb, name], timeout=timeout, mutates=False)
    if result.timed_out:
        raise ServiceError(name, f"systemctl {verb} timed out after {timeout:g}s", result.stderr)
    return result


def _commands(action: ServiceAction) -> ServiceCommands:
    if action.commands is None:
        raise ServiceError(action.name, "the command backend needs status, start and stop commands")
    return action.commands


def _check_unit_name(name: str) -> None:
    if not _UNIT_NAME.fullmatch(name):
        raise ServiceError(name, "not a valid systemd unit name")


