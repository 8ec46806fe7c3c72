"""Test helpers for the node engine: tiny config repos, runs through the pipeline and the CLI.

A scenario builds a config repo in tmp_path (fleet.xml with one node, one class, some
templates), converges a root directory against it, and looks at the report, the files
under the root and the last-applied record.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clirun import RECONCILER as RECONCILER  # re-exported: tests that start the script
from clirun import reconciler
from gitutil_repo import NO_MAINTENANCE, head_commit

from reconciler.compile.compiler import load_fleet
from reconciler.compile.nodeconfig import Severity
from reconciler.record.report import ActionReport, ChangeReport, RunReport
from reconciler.run import Desired, Mode, converge, desire
from reconciler.source.snapshot import open_snapshot
from reconciler.statedir import StateDir
from reconciler.system.local import LocalSystem

NODE = "web-01.shop.lab.t"
GIT_IDENTITY = ["-c", "user.name=Test Author", "-c", "user.email=author@example.org"]


@dataclass
class ConfigRepo:
    """A config repo on disk: fleet.xml, classes/web.xml and templates/."""

    path: Path

    def write(self, rel: str, data: str | bytes) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            target.write_text(data)
        else:
            target.write_bytes(data)
        return target

    def set_class(self, body: str, *, policy: str = "", variables: str = "") -> None:
        """Replace the class `web` with these actions (XML elements)."""
        policy_el = f"<policy {policy}/>" if policy else ""
        self.write("classes/web.xml",
                   f'<class name="web">{policy_el}{variables}\n{body}\n</class>\n')

    def set_fleet(self, *, defaults: str = 'max-severity="restart"', node_policy: str = "",
                  node_vars: str = "") -> None:
        """Replace fleet.xml: two nodes of class web, the first with its own policy and vars."""
        node_policy_el = f"<policy {node_policy}/>" if node_policy else ""
        self.write("fleet.xml", f"""<fleet domain="t">
  <defaults><policy {defaults}/><var name="greeting">hello</var></defaults>
  <nodes class="web" product="shop" cluster="lab" count="2"/>
  <node name="{NODE}">{node_vars}{node_policy_el}</node>
</fleet>
""")

    def commit(self, message: str = "config") -> str:
        """Commit everything (initialising the repo on first use); return the sha."""
        if not (self.path / ".git").exists():
            _git(self.path, "init", "-q", "-b", "main")
        _git(self.path, "add", "-A")
        _git(self.path, *NO_MAINTENANCE, "commit", "-q", "--no-verify", "--allow-empty",
             "-m", message)
        return head_commit(self.path)


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd.parent)}
    done = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def make_repo(
    tmp_path: Path,
    body: str,
    *,
    templates: dict[str, str | bytes] | None = None,
    defaults: str = 'max-severity="restart"',
    class_policy: str = "",
    node_policy: str = "",
    variables: str = "",
) -> ConfigRepo:
    """A config repo in tmp_path/repo whose class `web` holds the actions in `body`."""
    repo = ConfigRepo(tmp_path / "repo")
    repo.path.mkdir()
    repo.set_fleet(defaults=defaults, node_policy=node_policy)
    repo.set_class(body, policy=class_policy, variables=variables)
    for rel, data in (templates or {}).items():
        repo.write(f"templates/{rel}", data)
    return repo


def desired(repo: ConfigRepo, rev: str | None = None, node: str = NODE) -> Desired:
    return desire(load_fleet(open_snapshot(str(repo.path), rev)), node)


def converge_root(
    repo: ConfigRepo,
    root: Path,
    mode: Mode = "change",
    *,
    rev: str | None = None,
    host_commands: bool = False,
    max_severity: Severity | None = None,
    state_dir: Path | None = None,
) -> RunReport:
    """One run of the pipeline, as `reconciler audit|apply` does it (without the lock)."""
    root.mkdir(exist_ok=True)
    state = StateDir.of(state_dir) if state_dir is not None else StateDir.under(root)
    system = LocalSystem(str(root), host_commands=host_commands, backup_dir=str(state.backups))
    return converge(desired(repo, rev), system, state, mode, max_severity)


def state_dir(root: Path) -> Path:
    return StateDir.under(root).path


def applied_json(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((state_dir(root) / "applied.json").read_text())
    return data


def cli(
    *args: str, columns: int = 120, cwd: Path | None = None, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the `reconciler` command line (in this process unless asked for a real one);
    output captured as text."""
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"}
    return reconciler(args, env=env, cwd=cwd, process=process)


def cli_run(
    command: str, repo: ConfigRepo, root: Path, *extra: str, node: str = NODE,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    return cli(command, "--repo", str(repo.path), "--node", node, "--root", str(root), *extra,
               process=process)


def json_report(done: subprocess.CompletedProcess[str]) -> RunReport:
    """The report printed by `--format json`, checked against the schema."""
    report = RunReport.model_validate_json(done.stdout)
    assert report.exit_code == done.returncode, done.stderr
    return report


def action(report: RunReport, action_id: str) -> ActionReport:
    for found in report.actions:
        if found.id == action_id:
            return found
    raise AssertionError(f"no action {action_id} in the report: {[a.id for a in report.actions]}")


def change(report: RunReport, action_id: str, path: str | None = None) -> ChangeReport:
    """The only change of an action (or its change on `path`)."""
    changes = [c for c in action(report, action_id).changes if path is None or c.path == path]
    assert len(changes) == 1, changes
    return changes[0]


@dataclass(frozen=True)
class Entry:
    """One path as found on disk, never following symlinks."""

    kind: str  # file, directory, symlink, other
    mode: int
    owner: tuple[int, int]
    data: bytes | str | None  # file bytes, link target
    identity: tuple[int, int]  # inode and mtime: whether it was replaced or touched


def tree_state(top: Path) -> dict[str, Entry]:
    """Every path below `top` (as "/" + its path relative to `top`) with its kind, mode,
    owner, bytes or link target, inode and mtime: equal trees are untouched trees."""
    found: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            kind = "other"
            data: bytes | str | None = None
            if stat.S_ISREG(st.st_mode):
                kind, data = "file", Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                kind, data = "symlink", os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                kind = "directory"
            found["/" + os.path.relpath(path, top)] = Entry(
                kind, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid), data,
                (st.st_ino, st.st_mtime_ns))
    return found
