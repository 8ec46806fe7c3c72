"""Helpers for the agent tests: a small config repo on a bare origin, and the real agent
run as a subprocess whose JSON log lines the test reads as they come.

Nothing here waits a fixed time: a test waits for the agent's events (or polls a
condition up to a generous bound), and proves that nothing else happened with a
`barrier`, an event it provokes and that the agent handles after everything before it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clirun import RECONCILER
from gitutil_repo import Origin

from reconciler.record.report import RunReport

_BARRIERS = itertools.count()
NODE = "web-01.tickets.chi1.sa"
GREETING = f"hello from {NODE}\n"
STATIC = "static\n"

FLEET = """\
<fleet domain="sa">
  <defaults><policy max-severity="reload"/><var name="greeting">hello</var></defaults>
  <nodes class="web" product="tickets" cluster="chi1" count="1"/>
</fleet>
"""

WEB = """\
<class name="web">
  <directory path="/etc/web" mode="0755"/>
  <file path="/etc/web/app.conf" template="web/app.conf.j2" mode="0644"/>
  <file path="/etc/web/other.conf" mode="0600"><content>static
</content></file>
  <symlink path="/etc/web/current" target="/etc/web/app.conf"/>
</class>
"""

FILES: dict[str, str | bytes | None] = {
    "fleet.xml": FLEET,
    "classes/web.xml": WEB,
    "templates/web/app.conf.j2": "{{ greeting }} from {{ node.name }}\n",
}


def make_origin(base: Path, files: Mapping[str, str | bytes | None] = FILES) -> Origin:
    """A bare origin holding one commit of the small web fleet (or `files`)."""
    origin = Origin(base / "remote")
    origin.commit(dict(files), "web fleet")
    return origin


def agent_toml(path: Path, origin: Origin, node_dir: Path, **extra: object) -> Path:
    """agent.toml for NODE with its root and state under `node_dir`; `extra` keys as given."""
    settings: dict[str, object] = {
        "remote": origin.url, "node": NODE, "root": str(node_dir / "root"),
        "state-dir": str(node_dir / "state"), "interval": 3600, "splay": 0, **extra,
    }  # fmt: skip
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def agent_env(home: Path) -> dict[str, str]:
    """The environment of agent processes: the test's HOME, no system git config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    return {**env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}


class AgentProcess:
    """`reconciler agent --log-format json` in the background; its events in order."""

    def __init__(self, config: Path, home: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [RECONCILER, "agent", "--config", str(config), "--log-format", "json", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=agent_env(home), text=True,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self.other: list[str] = []  # stderr lines that are not events (tracebacks)
        self._arrived: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                self.other.append(line)
                continue
            self._arrived.put(event)

    def _drain(self) -> None:
        while True:
            try:
                self.events.append(self._arrived.get_nowait())
            except queue.Empty:
                return

    def wait_for(
        self, event: str, timeout: float = 30.0, after: int = 0,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
    ) -> dict[str, Any]:  # fmt: skip
        """The first `event` (index >= `after`) matching `where`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            for found in self.events[after:]:
                if found["event"] == event and where(found):
                    return found
            left = deadline - time.monotonic()
            if left <= 0 or (self.process.poll() is not None and self._arrived.empty()):
                raise AssertionError(
                    f"no {event!r} event within {timeout}s; got {self.events}; {self.other}")
            with contextlib.suppress(queue.Empty):
                self.events.append(self._arrived.get(timeout=min(left, 0.1)))

    def named(self, event: str, after: int = 0) -> list[dict[str, Any]]:
        self._drain()
        return [e for e in self.events[after:] if e["event"] == event]

    def mark(self) -> int:
        """An index to wait for events after this moment."""
        self._drain()
        return len(self.events)

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        self._drain()
        return code


def barrier(agent: AgentProcess, root: Path, node_path: str, after: int) -> dict[str, Any]:
    """Edit the managed regular file `node_path` by hand and return the watch audit of it
    (in change mode it heals the file). The agent takes file events in order, so whatever
    the test did before would have been audited before this audit or in it: the events up
    to this one are all there were. Each barrier writes its own content: the agent drops
    a state it has already looked at as an echo."""
    (root / node_path.lstrip("/")).write_text(f"barrier {next(_BARRIERS)}\n")
    return agent.wait_for("watch", after=after, where=lambda e: node_path in e["paths"])


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `condition` until true or `timeout`; the test asserts the result."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def run_report(
    result: str = "in-sync",
    started: datetime | None = None,
    changes: Sequence[tuple[str, str, str, str]] = (),
    mode: str = "change",
    stale: str | None = None,
    problems: Sequence[str] = (),
    **counts: int,
) -> RunReport:
    """A run report as `reconciler run` writes it; `changes` are (path, status, severity,
    drift) of one file action each; a held one is held above the ceiling."""
    actions = [
        {"id": f"file:{path}", "kind": "file", "declared_in": "web",
         "origin": "classes/web.xml:3", "status": status,
         "changes": [{"op": "update", "summary": "content", "path": path, "status": status,
                      "severity": severity, "drift": drift,
                      "held_by": "ceiling" if status == "held" else None}]}
        for path, status, severity, drift in changes
    ]
    commit = "0123456789abcdef0123456789abcdef01234567"
    return RunReport.model_validate({
        "node": NODE, "mode": mode, "root": "/", "config_commit": commit, "ceiling": "reload",
        "started": started or datetime.now(UTC), "duration_s": 0.5, "result": result,
        "exit_code": 0, "counts": counts, "actions": actions, "problems": list(problems),
        "source": {"commit": commit, "stale": stale},
    })
