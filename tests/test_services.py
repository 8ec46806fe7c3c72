"""The service backends driving a real daemon, and systemd through a recording systemctl."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from svc_support import (
    Daemon,
    FakeBinSystem,
    install_fake_systemctl,
    process_alive,
    service_action,
)

from reconciler.host import services
from reconciler.host.services import ServiceError, ServiceState
from reconciler.system.interface import WriteRefused
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import ReadOnlySystem


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    demo = Daemon(run_dir)
    yield demo
    demo.kill_all()


@pytest.fixture
def host() -> LocalSystem:
    return LocalSystem("/")


def wait_until(condition: Callable[[], object], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_probe_reports_stopped_before_start_and_running_after(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands())
    assert services.probe(host, action).running is False

    services.drive(host, action, "start")

    assert services.probe(host, action).running is True
    assert daemon.pidfile.exists()


def test_stop_ends_the_daemon_and_probe_reports_stopped(host: LocalSystem, daemon: Daemon) -> None:
    action = service_action("demo", commands=daemon.commands())
    services.drive(host, action, "start")
    pid = daemon.pid()

    services.drive(host, action, "stop")

    assert services.probe(host, action).running is False
    assert not process_alive(pid)


def test_restart_without_restart_command_stops_and_starts_a_new_process(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands())
    services.drive(host, action, "start")
    before = daemon.pid()

    services.drive(host, action, "restart")

    assert daemon.pid() != before
    assert services.probe(host, action).running is True


def test_reload_sends_hup_that_the_daemon_records_without_restarting(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands())
    services.drive(host, action, "start")
    pid = daemon.pid()

    services.drive(host, action, "reload")

    assert wait_until(lambda: daemon.reloads.exists() and daemon.reloads.read_text())
    assert daemon.reloads.read_text().split() == [str(pid)]
    assert daemon.pid() == pid


def test_reload_without_any_reload_or_restart_command_restarts(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands(reload=None))
    services.drive(host, action, "start")
    before = daemon.pid()

    services.drive(host, action, "reload")

    assert daemon.pid() != before
    assert not daemon.reloads.exists()


def test_reload_falls_back_to_declared_restart_command(
    host: LocalSystem, daemon: Daemon, tmp_path: Path
) -> None:
    marker = tmp_path / "restart-command-ran"
    action = service_action(
        "demo", commands=daemon.commands(reload=None, restart=f"touch {marker}")
    )

    services.drive(host, action, "reload")

    assert marker.exists()


def test_enable_and_disable_commands_drive_is_enabled_probe(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands())
    assert services.probe(host, action) == ServiceState(running=False, enabled=False)

    services.drive(host, action, "enable")
    assert services.probe(host, action).enabled is True

    services.drive(host, action, "disable")
    assert services.probe(host, action).enabled is False


def test_enabled_is_unknown_without_is_enabled_command(host: LocalSystem, daemon: Daemon) -> None:
    action = service_action("demo", commands=daemon.commands(is_enabled=None))

    assert services.probe(host, action).enabled is None


def test_enable_without_enable_command_is_refused(host: LocalSystem, daemon: Daemon) -> None:
    action = service_action("demo", commands=daemon.commands(enable=None))

    with pytest.raises(ServiceError, match="no enable command is declared"):
        services.drive(host, action, "enable")


def test_failing_start_raises_service_error_with_stderr_tail(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action(
        "demo", commands=daemon.commands(start="echo 'demo: port 80 in use' >&2; exit 3")
    )

    with pytest.raises(ServiceError, match=r"start failed \(exit 3\)") as raised:
        services.drive(host, action, "start")

    assert raised.value.service == "demo"
    assert raised.value.stderr_tail == "demo: port 80 in use"


def test_start_that_hangs_times_out(host: LocalSystem, daemon: Daemon) -> None:
    action = service_action("demo", commands=daemon.commands(start="sleep 30"))

    with pytest.raises(ServiceError, match=r"start timed out after 0\.5s"):
        services.drive(host, action, "start", timeout=0.5)


def test_status_command_that_cannot_run_is_an_error(host: LocalSystem, daemon: Daemon) -> None:
    action = service_action(
        "demo", commands=daemon.commands(status="reconciler-no-such-status-tool")
    )

    with pytest.raises(ServiceError, match=r"status command could not run \(exit 127\)"):
        services.probe(host, action)


def test_probe_runs_in_audit_mode_but_starting_is_refused(
    host: LocalSystem, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands())
    audit = ReadOnlySystem(host)

    assert services.probe(audit, action) == ServiceState(running=False, enabled=False)
    with pytest.raises(WriteRefused, match="read-only"):
        services.drive(audit, action, "start")
    assert not daemon.pidfile.exists()


def test_command_backend_under_another_root_is_unknown_and_runs_nothing(
    tmp_path: Path, daemon: Daemon
) -> None:
    marker = tmp_path / "status-ran"
    action = service_action(
        "demo", commands=daemon.commands(status=f"touch {marker}", is_enabled=f"touch {marker}")
    )

    state = services.probe(LocalSystem(str(tmp_path)), action)

    assert (state.running, state.enabled) == (None, None)
    assert state.note is not None and "not probed under root" in state.note
    assert not marker.exists()


def test_driving_a_host_service_under_another_root_is_refused(
    tmp_path: Path, daemon: Daemon
) -> None:
    action = service_action("demo", commands=daemon.commands())

    with pytest.raises(ServiceError, match="refusing to start a host service"):
        services.drive(LocalSystem(str(tmp_path)), action, "start")

    assert not daemon.pidfile.exists()


def test_systemd_probe_under_another_root_never_calls_systemctl(tmp_path: Path) -> None:
    calls = install_fake_systemctl(tmp_path / "bin")
    system = FakeBinSystem(str(tmp_path), tmp_path / "bin", host_commands=False)

    state = services.probe(system, service_action("nginx", backend="systemd"))

    assert (state.running, state.enabled) == (None, None)
    assert not calls.exists()


def test_systemd_probe_reads_is_active_and_is_enabled(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    calls = install_fake_systemctl(bin_dir)
    system = FakeBinSystem(str(tmp_path), bin_dir, host_commands=True)
    action = service_action("nginx", backend="systemd")
    (bin_dir / "nginx.unit").touch()
    assert services.probe(system, action) == ServiceState(running=False, enabled=False)

    services.drive(system, action, "start")
    services.drive(system, action, "enable")

    assert services.probe(system, action) == ServiceState(running=True, enabled=True)
    assert calls.read_text().splitlines() == [
        "is-active nginx",
        "is-enabled nginx",
        "start nginx",
        "enable nginx",
        "is-active nginx",
        "is-enabled nginx",
    ]


def test_systemd_probe_of_missing_unit_reports_stopped_and_disabled(tmp_path: Path) -> None:
    install_fake_systemctl(tmp_path / "bin")
    system = FakeBinSystem(str(tmp_path), tmp_path / "bin", host_commands=True)

    state = services.probe(system, service_action("not-installed-yet", backend="systemd"))

    assert state == ServiceState(running=False, enabled=False)


def test_systemd_reload_uses_reload_or_restart(tmp_path: Path) -> None:
    calls = install_fake_systemctl(tmp_path / "bin")
    system = FakeBinSystem(str(tmp_path), tmp_path / "bin", host_commands=True)
    action = service_action("nginx", backend="systemd")

    services.drive(system, action, "reload")
    services.drive(system, action, "restart")
    services.drive(system, action, "stop")
    services.drive(system, action, "disable")

    assert calls.read_text().splitlines() == [
        "reload-or-restart nginx",
        "restart nginx",
        "stop nginx",
        "disable nginx",
    ]


def test_systemd_that_is_not_running_is_an_error_not_a_stopped_service(tmp_path: Path) -> None:
    install_fake_systemctl(tmp_path / "bin")
    (tmp_path / "bin" / "offline").touch()
    system = FakeBinSystem(str(tmp_path), tmp_path / "bin", host_commands=True)

    with pytest.raises(ServiceError, match="systemctl is-active failed") as raised:
        services.probe(system, service_action("nginx", backend="systemd"))

    assert "not been booted with systemd" in raised.value.stderr_tail


@pytest.mark.parametrize("name", ["--host=evil", "nginx service", "nginx;reboot"])
def test_invalid_unit_name_is_refused_before_systemctl_runs(tmp_path: Path, name: str) -> None:
    calls = install_fake_systemctl(tmp_path / "bin")
    system = FakeBinSystem(str(tmp_path), tmp_path / "bin", host_commands=True)

    with pytest.raises(ServiceError, match="not a valid systemd unit name"):
        services.drive(system, service_action(name, backend="systemd"), "start")

    assert not calls.exists()
