"""Helpers for the config-repo tests: real git repositories and the real CLI.

`Workspace.make_repo` writes a config repo under tmp_path and (by default) commits it with
a fixed identity; `Workspace.cli` runs the `reconciler` command line (in-process unless
asked for a real process, see clirun.py). Both run git with an isolated HOME and without
the system config, so host settings never leak in.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from clirun import RECONCILER as RECONCILER  # re-exported: tests that start the script by hand
from clirun import reconciler
from gitutil_repo import NO_MAINTENANCE, NO_TEMPLATE, head_commit

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.org",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.org",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}

# A small, valid fleet: two classes (web inherits base), three nodes, one template.
BASIC: dict[str, str] = {
    "fleet.xml": """\
<fleet domain="sa">
  <defaults>
    <policy max-severity="reload"/>
    <var name="greeting">hello</var>
  </defaults>
  <nodes class="web" product="tickets" cluster="chi1" count="2"/>
  <nodes class="web" product="events" cluster="lax2" count="1"/>
</fleet>
""",
    "classes/base.xml": """\
<class name="base">
  <file path="/etc/motd" template="base/motd.j2"/>
</class>
""",
    "classes/web.xml": """\
<class name="web" inherits="base">
  <package name="nginx"/>
</class>
""",
    "templates/base/motd.j2": "{{ greeting }} from {{ node.name }}\n",
}


def fleet_xml(body: str, domain: str = "sa") -> str:
    """fleet.xml with `body` starting on line 2."""
    return f'<fleet domain="{domain}">\n{body}</fleet>\n'


def class_xml(name: str, body: str, inherits: str | None = None) -> str:
    """classes/<name>.xml with `body` starting on line 2."""
    parent = f' inherits="{inherits}"' if inherits else ""
    return f'<class name="{name}"{parent}>\n{body}</class>\n'


def git_env(home: Path) -> dict[str, str]:
    """The environment every git (and reconciler) process of a test runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    return {**env, **IDENTITY, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}


class CliResult(NamedTuple):
    """What one run of the console script did."""

    code: int
    out: str
    err: str


class Workspace:
    """Helpers bound to one test's tmp_path and isolated HOME."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.env = git_env(self.home)

    def git(self, repo: Path, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, env=self.env, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def write(self, repo: Path, files: Mapping[str, str | bytes | None]) -> None:
        """Write files under `repo` (None deletes one)."""
        for rel, content in files.items():
            path = repo / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(self, repo: Path, message: str = "change") -> str:
        self.git(repo, "add", "--all")
        self.git(repo, *NO_MAINTENANCE, "commit", "--quiet", "--allow-empty", "-m", message)
        return head_commit(repo)

    def make_repo(
        self, files: Mapping[str, str | bytes | None], commit: bool = True, name: str = "repo"
    ) -> Path:
        """A config repo under tmp_path holding `files`, committed on main unless told not to."""
        repo = self.tmp / name
        repo.mkdir(parents=True)
        self.git(repo, "init", "--quiet", NO_TEMPLATE, "-b", "main")
        self.write(repo, files)
        if commit:
            self.commit(repo, "initial")
        return repo

    def cli(self, *args: str | Path, cwd: Path | None = None, process: bool = False) -> CliResult:
        """Run `reconciler ARGS` (a real process if `process`); returns (exit code, stdout,
        stderr)."""
        done = reconciler(args, env={**self.env, "COLUMNS": "200"}, cwd=cwd or self.tmp,
                          process=process)
        return CliResult(done.returncode, done.stdout, done.stderr)
