"""Helpers for the `reconciler run` tests: a config repo pushed to a bare origin, an
agent.toml pointing at it, a node root and state directory in tmp_path, and the real CLI.

The config repo holds one class `web` with a few file actions (one from a template, one
secret) for the nodes `web-01.shop.lab.t` and `web-02.shop.lab.t`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from clirun import RECONCILER, reconciler
from gitutil_repo import Origin, git

from reconciler.agent.runs import RunOptions, from_settings
from reconciler.agent.settings import AgentConfig
from reconciler.record.report import RunReport
from reconciler.run import perform

NODE = "web-01.shop.lab.t"
SECRET = "password=correct-horse-battery-staple"

FLEET = f"""\
<fleet domain="t">
  <defaults><policy max-severity="restart"/><var name="greeting">hello</var>
    <var name="secret_pw">{SECRET}</var></defaults>
  <nodes class="web" product="shop" cluster="lab" count="2"/>
</fleet>
"""

BASE_ACTIONS = """\
  <file path="/etc/x" template="web/x.j2"/>
  <file path="/etc/app/app.conf"><content>workers = 4
</content></file>
  <file path="/etc/app/secret.ini" template="web/secret.j2" secret="true" mode="0600"/>
"""

def web_class(body: str) -> str:
    """classes/web.xml holding exactly the actions in `body`."""
    return f'<class name="web">\n{body}</class>\n'


BASE_FILES: dict[str, str] = {
    "fleet.xml": FLEET,
    "classes/web.xml": web_class(BASE_ACTIONS),
    "templates/web/x.j2": "{{ greeting }} from {{ node.name }}\n",
    "templates/web/secret.j2": "{{ secret_pw }}\n",
}


class Done(NamedTuple):
    """What one run of the console script did."""

    code: int
    out: str
    err: str


class Node:
    """One node under test: its origin, agent.toml, root and state directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.origin = Origin(tmp_path / "remote")
        self.root = tmp_path / "root"
        self.state = tmp_path / "state"
        self.config = tmp_path / "agent.toml"
        self.write_config()

    # -- the config repo -------------------------------------------------------------

    def push(self, files: Mapping[str, str | bytes | None], message: str = "change",
             signing: list[str] | None = None) -> str:
        """Commit `files` on top of origin's main and push; returns the new sha."""
        return self.origin.commit(files, message, signing=signing or ())

    def push_base(self, message: str = "base config", signing: list[str] | None = None) -> str:
        return self.push(BASE_FILES, message, signing)

    # -- agent.toml ----------------------------------------------------------------------

    def write_config(self, remote: str | None = None, **settings: Any) -> Path:
        """agent.toml for this node; extra settings use TOML keys (`require-signed`)."""
        values: dict[str, Any] = {
            "remote": remote or self.origin.url,
            "node": NODE,
            "state-dir": str(self.state),
            "root": str(self.root),
            "fetch-timeout": 10.0,
            **settings,
        }
        lines = [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
        self.config.write_text("\n".join(lines) + "\n")
        return self.config

    def agent_config(self) -> AgentConfig:
        from reconciler.agent import settings as agentconf

        return agentconf.load(self.config)

    # -- running ---------------------------------------------------------------------

    def cli(self, *args: str | Path, process: bool = False) -> Done:
        """`reconciler ARGS --config agent.toml` (a real process if `process`)."""
        done = reconciler([*args, "--config", self.config],
                          env={**os.environ, "COLUMNS": "200"}, process=process)
        return Done(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        """Start `reconciler ARGS --config agent.toml` without waiting for it."""
        return subprocess.Popen(
            [RECONCILER, *map(str, args), "--config", str(self.config)],
            env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, **options: Any) -> RunReport:
        """One run in this process, as `reconciler run` does it."""
        return perform(from_settings(self.agent_config(), RunOptions(**options)))

    # -- what the node holds ---------------------------------------------------------

    @property
    def history(self) -> Path:
        return self.state / "history"

    def history_commits(self) -> list[str]:
        if not (self.history / "HEAD").exists():
            return []
        out = git(self.history, "rev-list", "--all")
        return out.splitlines()

    def trailers(self, rev: str = "main") -> dict[str, str]:
        out = git(self.history, "log", "-1", "--format=%(trailers:only,unfold)", rev)
        pairs = (line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return dict(pairs)

    def last_run(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "last-run.json").read_bytes())
        return data

    def source_state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "source-state.json").read_bytes())
        return data

    def root_files(self) -> dict[str, bytes]:
        """Every regular file under the root with its bytes (to compare whole trees)."""
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def wait_for(path: Path, timeout: float = 20.0) -> None:
    """Block until `path` exists (a process under test reached a point)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def lock_holder(lock_path: Path, ready: Path) -> subprocess.Popen[bytes]:
    """A python process holding the node lock (via NodeLock) until killed."""
    script = (
        "import sys, time, pathlib\n"
        "from reconciler.lock import NodeLock\n"
        "lock = NodeLock(sys.argv[1])\n"
        "lock.acquire()\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "time.sleep(120)\n"
    )
    return subprocess.Popen([sys.executable, "-c", script, str(lock_path), str(ready)])


def stop(process: subprocess.Popen[Any]) -> None:
    """End a helper process started by the test (by its own pid)."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
