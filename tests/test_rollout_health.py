"""Health checks after a run that changed something: a failing check puts back every
file the run changed, byte for byte, fires the notifications again so the service reads
the old file, and the report says `reverted` with the check's output. The service is a
real HTTP server process run by a `service backend="command"`."""

from __future__ import annotations

import html
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import applied_json, converge_root, make_repo, state_dir
from gitutil_repo import free_port

SERVER = Path(__file__).with_name("health_server.py")
PY = sys.executable


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class App:
    """The service's files and port, and the class that runs it."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.root = tmp_path / "root"
        self.pidfile = tmp_path / "app.pid"

    def body(self, conf: str, secret: str = "") -> str:
        conf_path = self.root / "etc/app.conf"
        check = (f"{PY} -c \"import urllib.request as u; "
                 f"print(u.urlopen('http://127.0.0.1:{self.port}/healthz').read())\"")
        start = (f"setsid {PY} {SERVER} {conf_path} {self.pidfile} {self.port} "
                 "</dev/null >/dev/null 2>&1 & "
                 f"for i in $(seq 400); do [ -s {self.pidfile} ] && exit 0; sleep 0.05; done; "
                 "exit 1")
        reload = (f"{PY} -c \"import urllib.request as u; "
                  f"u.urlopen('http://127.0.0.1:{self.port}/reload')\"")
        extra = (f'<file path="/etc/app.secret" secret="true" notify="service:app:reload">'
                 f"<content>{secret}</content></file>\n" if secret else "")
        return f"""
<file path="/etc/app.conf" notify="service:app:reload"><content>{conf}</content></file>
{extra}<symlink path="/etc/app.current" target="/etc/app.conf"/>
<service name="app" state="running" backend="command">
  <status>kill -0 "$(cat {self.pidfile} 2>/dev/null)" 2>/dev/null</status>
  <start>{html.escape(start)}</start>
  <stop>kill "$(cat {self.pidfile})"; rm -f {self.pidfile}</stop>
  <reload>{html.escape(reload)}</reload>
</service>
<health name="app-serves" run="{html.escape(check)}" timeout="10s" retries="1" interval="0s"
        after="service:app"/>
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    served = App(tmp_path)
    yield served
    if served.pidfile.exists():
        os.kill(int(served.pidfile.read_text()), signal.SIGTERM)


def test_a_failing_health_check_reverts_the_run_and_reloads_the_old_file(
    tmp_path: Path, app: App,
) -> None:
    repo = make_repo(tmp_path, app.body("healthy v1\n"))
    first = converge_root(repo, app.root, host_commands=True)
    assert (first.result, [h.passed for h in first.health]) == ("changed", [True])
    good = (app.root / "etc/app.conf").read_bytes()
    records = applied_json(app.root)
    repo.set_class(app.body("broken v2\n"))
    bad = converge_root(repo, app.root, host_commands=True)
    assert (bad.result, bad.exit_code & 4) == ("reverted", 4)
    assert [(h.name, h.passed) for h in bad.health] == [("app-serves", False)]
    assert "HTTP Error 503" in bad.health[0].output
    assert bad.revert is not None
    assert bad.revert.paths == ["/etc/app.conf"]
    assert bad.revert.refired == ["service:app: reload"]
    assert [(h.name, h.passed) for h in bad.revert.checks] == [("app-serves", True)]
    assert bad.problems[0].startswith("health check app-serves failed (1 attempt(s)): exited 1")
    assert (app.root / "etc/app.conf").read_bytes() == good
    assert get(app.port, "/healthz") == (200, "ok")
    assert get(app.port, "/reloads") == (200, "2")  # the bad file, then the good one again
    assert applied_json(app.root) == records


def test_a_revert_puts_back_links_and_secret_files_and_never_writes_a_secret_elsewhere(
    tmp_path: Path, app: App,
) -> None:
    repo = make_repo(tmp_path, app.body("healthy v1\n", secret="old-s3cret-value"))
    converge_root(repo, app.root, host_commands=True)
    repo.set_class(app.body("broken v2\n", secret="new-s3cret-value")
                   .replace('target="/etc/app.conf"', 'target="/etc/other.conf"'))
    bad = converge_root(repo, app.root, host_commands=True)
    assert bad.result == "reverted" and bad.revert is not None
    assert bad.revert.paths == ["/etc/app.conf", "/etc/app.secret", "/etc/app.current"]
    assert (app.root / "etc/app.secret").read_text() == "old-s3cret-value"
    assert os.readlink(app.root / "etc/app.current") == "/etc/app.conf"
    for path in state_dir(app.root).rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes(), path


def test_checks_wait_for_a_change_and_skip_what_is_held(tmp_path: Path, app: App) -> None:
    repo = make_repo(tmp_path, app.body("healthy v1\n"), defaults='max-severity="none"')
    held = converge_root(repo, app.root, host_commands=True)
    assert [(h.name, h.skipped) for h in held.health] == [
        ("app-serves", "not run: service:app is held this run")]
    assert converge_root(repo, app.root, host_commands=True).health == []  # nothing changed
