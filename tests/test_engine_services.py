"""Service actions with the command backend driving a real small daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from engine_support import ConfigRepo, action, change, converge_root, make_repo
from svc_support import Daemon, process_alive

from reconciler.record.report import EXIT_FAILED, EXIT_HELD, EXIT_IN_SYNC


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    found = Daemon(tmp_path / "daemon")
    found.directory.mkdir()
    try:
        yield found
    finally:
        found.kill_all()


def service_xml(daemon: Daemon, *, state: str = "running") -> str:
    """A <service backend="command"> whose commands drive `daemon` (no restart command)."""
    commands = daemon.commands()
    children = "".join(
        f"<{tag}>{escape(value)}</{tag}>"
        for tag, value in (("status", commands.status), ("start", commands.start),
                           ("stop", commands.stop), ("reload", commands.reload),
                           ("enable", commands.enable), ("disable", commands.disable),
                           ("is-enabled", commands.is_enabled))
        if value is not None)
    return f'<service name="demo" state="{state}" enabled="true" backend="command">' \
           f"{children}</service>"


def _repo(tmp_path: Path, daemon: Daemon, files: str = "", **kwargs: str) -> ConfigRepo:
    return make_repo(tmp_path, files + service_xml(daemon, **kwargs))


def _reloads(daemon: Daemon) -> int:
    return len(daemon.reloads.read_text().split()) if daemon.reloads.exists() else 0


def test_service_is_started_and_enabled(tmp_path: Path, daemon: Daemon) -> None:
    repo = _repo(tmp_path, daemon)
    root = tmp_path / "root"

    report = converge_root(repo, root, host_commands=True)

    assert [c.op for c in action(report, "service:demo").changes] == ["start", "enable"]
    assert process_alive(daemon.pid())
    assert daemon.flag.exists()
    assert converge_root(repo, root, host_commands=True).exit_code == EXIT_IN_SYNC


def test_stopped_service_is_started_again(tmp_path: Path, daemon: Daemon) -> None:
    repo = _repo(tmp_path, daemon)
    root = tmp_path / "root"
    converge_root(repo, root, host_commands=True)
    first = daemon.pid()
    daemon.kill_all()
    daemon.pidfile.unlink()

    report = converge_root(repo, root, host_commands=True)

    assert change(report, "service:demo").summary == "start demo"
    assert daemon.pid() != first and process_alive(daemon.pid())


def test_running_service_meant_to_be_stopped_is_stopped(tmp_path: Path, daemon: Daemon) -> None:
    converge_root(_repo(tmp_path, daemon), tmp_path / "root", host_commands=True)
    pid = daemon.pid()
    repo = ConfigRepo(tmp_path / "repo")
    repo.set_class(service_xml(daemon, state="stopped"))

    report = converge_root(repo, tmp_path / "root", host_commands=True)

    assert change(report, "service:demo").op == "stop"
    assert not daemon.pidfile.exists()
    assert not process_alive(pid)


FILES = """
<file path="/etc/demo/a.conf" notify="service:demo:reload"><content>a</content></file>
<file path="/etc/demo/b.conf" notify="service:demo:reload"><content>b</content></file>
"""


def test_two_changed_files_reload_the_service_once(tmp_path: Path, daemon: Daemon) -> None:
    repo = _repo(tmp_path, daemon, FILES)
    root = tmp_path / "root"
    converge_root(repo, root, host_commands=True)
    pid = daemon.pid()
    assert _reloads(daemon) == 0  # just started with the new files: no reload needed
    repo.set_class(FILES.replace(">a<", ">a2<").replace(">b<", ">b2<") + service_xml(daemon))

    report = converge_root(repo, root, host_commands=True)

    notified = change(report, "service:demo")
    assert (notified.op, notified.status) == ("notify-reload", "applied")
    assert notified.notified_by == ["file:/etc/demo/a.conf", "file:/etc/demo/b.conf"]
    assert _reloads(daemon) == 1
    assert daemon.pid() == pid


def test_restart_wins_over_reload(tmp_path: Path, daemon: Daemon) -> None:
    files = FILES.replace('b.conf" notify="service:demo:reload"', 'b.conf" notify="service:demo"')
    repo = _repo(tmp_path, daemon)
    root = tmp_path / "root"
    converge_root(repo, root, host_commands=True)
    pid = daemon.pid()
    repo.set_class(files + service_xml(daemon))

    report = converge_root(repo, root, host_commands=True)

    assert change(report, "service:demo").op == "notify-restart"
    assert _reloads(daemon) == 0
    assert daemon.pid() != pid and not process_alive(pid)


def test_held_change_does_not_fire_its_notification(tmp_path: Path, daemon: Daemon) -> None:
    files = '<file path="/etc/demo/a.conf" severity="reboot" notify="service:demo:reload">' \
            "<content>a</content></file>"
    repo = _repo(tmp_path, daemon)
    root = tmp_path / "root"
    converge_root(repo, root, host_commands=True)
    repo.set_class(files + service_xml(daemon))

    report = converge_root(repo, root, host_commands=True)

    assert change(report, "file:/etc/demo/a.conf").status == "held"
    assert action(report, "service:demo").changes == []
    assert _reloads(daemon) == 0
    assert report.exit_code == EXIT_HELD


def test_service_that_cannot_be_probed_fails_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, """
<service name="broken" backend="command">
  <status>/nonexistent/status-program</status><start>true</start><stop>true</stop>
</service>
<service name="nosystemd"/>
<file path="/etc/other"><content>x</content></file>
""")

    report = converge_root(repo, tmp_path / "root", host_commands=True)

    assert action(report, "service:broken").status == "failed"
    assert "status command could not run (exit 127)" in (action(report, "service:broken").error
                                                          or "")
    assert action(report, "file:/etc/other").status == "applied"
    assert report.exit_code & EXIT_FAILED
