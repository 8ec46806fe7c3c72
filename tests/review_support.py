"""Helpers for the plan and hook tests: a small fleet in a real git repo, and the CLI
(in-process unless a test asks for a real process, see clirun.py).

Every git and reconciler process runs with the test's HOME, without the system git
config, and with a fixed identity and date, so commits (and their ids in golden
outputs) are the same on every run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from clirun import reconciler
from configrepo import IDENTITY
from gitutil_repo import NO_MAINTENANCE, NO_TEMPLATE, head_commit

# Ten nodes: web-01..04 in clusters c1 and c2, db-01..02 in c1. web's nginx.conf
# reloads nginx, its secret key restarts it; db lists the web nodes it lets in.
SMALL_FLEET: dict[str, str] = {
    "fleet.xml": """\
<fleet domain="t">
  <defaults>
    <policy max-severity="reload"/>
    <var name="workers" type="int">4</var>
  </defaults>
  <vars cluster="c1"><var name="dns">10.1.0.2</var></vars>
  <vars cluster="c2"><var name="dns">10.2.0.2</var></vars>
  <nodes class="web" product="shop" cluster="c1" count="4"/>
  <nodes class="web" product="shop" cluster="c2" count="4"/>
  <nodes class="db" product="shop" cluster="c1" count="2"/>
</fleet>
""",
    "classes/base.xml": """\
<class name="base">
  <file path="/etc/resolv.conf" template="base/resolv.conf.j2" mode="0644"/>
</class>
""",
    "classes/web.xml": """\
<class name="web" inherits="base">
  <var name="keepalive" type="int">65</var>
  <var name="web_key">key-one-0f3a9c</var>
  <package name="nginx" version="1.24"/>
  <file path="/etc/nginx/nginx.conf" template="web/nginx.conf.j2" mode="0644" owner="root"
        group="root" requires="package:nginx" notify="service:nginx:reload"/>
  <file path="/etc/nginx/site.key" template="web/site.key.j2" secret="true" mode="0600"
        requires="package:nginx" notify="service:nginx:restart"/>
  <service name="nginx" state="running" enabled="true" requires="package:nginx"/>
</class>
""",
    "classes/db.xml": """\
<class name="db" inherits="base">
  <package name="mariadb-server"/>
  <file path="/etc/mysql/allowed.conf" template="db/allowed.conf.j2" mode="0644"/>
</class>
""",
    "templates/base/resolv.conf.j2": "nameserver {{ dns }}\nsearch {{ node.cluster }}.t\n",
    "templates/web/nginx.conf.j2": """\
worker_processes {{ workers }};
events {
    worker_connections 1024;
}
http {
    keepalive_timeout {{ keepalive }};
    server_tokens off;
}
""",
    "templates/web/site.key.j2": "key = {{ web_key }}\n",
    "templates/db/allowed.conf.j2": (
        "{% for name in nodes(cls='web') %}allow {{ name }}\n{% endfor %}"
    ),
}


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every git and reconciler process of a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    env.update(IDENTITY)
    env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C.UTF-8"})
    env.pop("RECONCILER", None)
    env.update(extra or {})
    return env


def run(cmd: list[str], cwd: Path, home: Path, check: bool = True,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with the test environment; fail with its output when `check`."""
    done = subprocess.run(cmd, cwd=cwd, env=isolated_env(home, env), capture_output=True,
                          text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


class FleetRepo:
    """A config repo (working clone) under `root`, committed on main."""

    def __init__(self, root: Path, files: Mapping[str, str] = SMALL_FLEET) -> None:
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = root / "config"
        self.path.mkdir()
        self.git("init", "-q", NO_TEMPLATE, "-b", "main")
        self.write(files)
        self.commit("Initial fleet")

    def git(self, *args: str, check: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run(["git", *args], self.path, self.home, check, env)

    def reconciler(self, *args: str, env: Mapping[str, str] | None = None,
                   process: bool = False) -> subprocess.CompletedProcess[str]:
        """`reconciler ARGS` in the clone with the test environment (plus `env`)."""
        return reconciler(args, env=isolated_env(self.home, env), cwd=self.path,
                          process=process)

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write (or, for None, delete) files in the working tree."""
        for rel, text in files.items():
            target = self.path / rel
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def edit(self, rel: str, old: str, new: str) -> None:
        """Replace `old` (which must be there) by `new` in a working-tree file."""
        text = (self.path / rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        self.write({rel: text.replace(old, new, 1)})

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git(*NO_MAINTENANCE, "commit", "-q", "--no-verify", "-m", message)
        return self.head()

    def head(self) -> str:
        return head_commit(self.path)
