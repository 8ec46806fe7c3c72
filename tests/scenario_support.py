"""Engine scenarios as data: read a scenario folder, plant its node, run, compare.

The format is described in tests/scenarios/README.md. Trees are TOML manifests keyed by
node path; a mode left out means the default (0644 for files, 0755 for directories), so
every mode is checked and only the unusual ones are written down.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine_support import NODE, ConfigRepo, Entry, tree_state

from reconciler.compile.compiler import load_fleet
from reconciler.compile.nodeconfig import Severity
from reconciler.record.report import RunReport
from reconciler.run import Mode, converge, desire
from reconciler.source.snapshot import open_snapshot
from reconciler.statedir import StateDir
from reconciler.system.backups import INDEX
from reconciler.system.local import LocalSystem

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
ARGS = frozenset({"about", "mode", "max_severity", "host_commands", "commit", "settles"})
ENTRY_KEYS = frozenset({"content", "base64", "directory", "symlink", "mode", "kept"})
DEFAULT_MODES = {"file": 0o644, "directory": 0o755}
ACTION_NOISE = ("kind", "declared_in", "origin")  # provenance: stable, but not what is tested
REPORT_NOISE = ("schema_version", "node", "mode", "root", "started", "duration_s")


@dataclass(frozen=True)
class Scenario:
    """One folder: the config repo, the node before, how to run, what must come out."""

    folder: Path
    about: str
    mode: Mode
    max_severity: Severity | None
    host_commands: bool
    commit: bool  # run at a git commit of the repo instead of its working tree
    settles: bool  # a second apply, and an audit, right after find nothing to do

    @property
    def name(self) -> str:
        return self.folder.name

    def manifest(self, which: str) -> dict[str, Any] | None:
        path = self.folder / f"{which}.toml"
        if not path.exists():
            return None
        with path.open("rb") as handle:
            return tomllib.load(handle)


def scenario_folders() -> list[Path]:
    return sorted(p for p in SCENARIOS.iterdir() if (p / "scenario.toml").is_file())


def load(folder: Path) -> Scenario:
    with (folder / "scenario.toml").open("rb") as handle:
        args = tomllib.load(handle)
    unknown = set(args) - ARGS
    assert not unknown, f"{folder.name}/scenario.toml: unknown keys {sorted(unknown)}"
    assert args.get("mode", "change") in ("audit", "change"), args["mode"]
    ceiling = args.get("max_severity")
    return Scenario(folder, args["about"], args.get("mode", "change"),
                    Severity.parse(ceiling) if ceiling else None,
                    bool(args.get("host_commands", False)), bool(args.get("commit", False)),
                    bool(args.get("settles", False)))


# -- the node as data ---------------------------------------------------------------


def without_directory_mtimes(tree: dict[str, Entry]) -> dict[str, Entry]:
    """The tree with directories known by inode only: a failed write's temp file may come
    and go in a directory, which moves its mtime but changes nothing."""
    return {p: replace(e, identity=(e.identity[0], 0)) if e.kind == "directory" else e
            for p, e in tree.items()}


def _kind(spec: dict[str, Any]) -> tuple[str, bytes | str | None]:
    unknown = set(spec) - ENTRY_KEYS
    assert not unknown, f"unknown keys {sorted(unknown)} in {spec}"
    if "content" in spec:
        return "file", spec["content"].encode()
    if "base64" in spec:
        return "file", base64.b64decode(spec["base64"])
    if "symlink" in spec:
        return "symlink", spec["symlink"]
    assert spec.get("directory") is True, \
        f"an entry needs content, base64, symlink or directory = true: {spec}"
    return "directory", None


def _mode(spec: dict[str, Any], kind: str) -> int | None:
    if kind == "symlink":
        return None
    return int(spec["mode"], 8) if "mode" in spec else DEFAULT_MODES[kind]


def plant(top: Path, tree: dict[str, dict[str, Any]]) -> None:
    """Create the manifest's paths below `top`; parents not listed get the default mode."""
    for node_path, spec in sorted(tree.items()):
        assert "kept" not in spec, f"{node_path}: kept belongs in after.toml"
        host = top / node_path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        kind, data = _kind(spec)
        if kind == "symlink":
            host.symlink_to(str(data))
            continue
        if kind == "file":
            assert isinstance(data, bytes)
            host.write_bytes(data)
        else:
            host.mkdir(exist_ok=True)
        mode = _mode(spec, kind)
        assert mode is not None
        host.chmod(mode)


def compare_tree(
    expected: dict[str, dict[str, Any]], actual: dict[str, Entry], before: dict[str, Entry],
) -> list[str]:
    """How `actual` differs from the manifest: every path must be listed or be the parent of
    a listed one (a directory with the default mode); `kept` asks for the same inode and
    mtime as before (changed in place, or not at all)."""
    problems = []
    parents = {p for path in expected for p in _ancestors(path)}
    for path, entry in sorted(actual.items()):
        if path not in expected:
            if path not in parents:
                problems.append(f"{path}: not expected ({entry.kind})")
            elif (entry.kind, entry.mode) != ("directory", DEFAULT_MODES["directory"]):
                problems.append(f"{path}: expected a directory {DEFAULT_MODES['directory']:04o}, "
                                f"found {entry.kind} {entry.mode:04o}")
    for path, spec in sorted(expected.items()):
        found = actual.get(path)
        if found is None:
            problems.append(f"{path}: missing")
            continue
        kind, data = _kind({k: v for k, v in spec.items() if k != "kept"})
        mode = _mode(spec, kind)
        if found.kind != kind:
            problems.append(f"{path}: expected a {kind}, found a {found.kind}")
        elif kind != "directory" and found.data != data:
            problems.append(f"{path}: expected {data!r}, found {found.data!r}")
        elif mode is not None and found.mode != mode:
            problems.append(f"{path}: expected mode {mode:04o}, found {found.mode:04o}")
        if spec.get("kept") and (path not in before or before[path].identity != found.identity):
            problems.append(f"{path}: replaced or touched, expected kept as it was")
    return problems


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def records(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Last-applied records as applied.json holds them: an octal `mode` string becomes a
    number, and `content` stands for its sha256 (records never hold contents)."""
    found = {}
    for path, spec in table.items():
        record = dict(spec)
        if "mode" in record:
            record["mode"] = int(record["mode"], 8)
        if "content" in record:
            record["sha256"] = hashlib.sha256(record.pop("content").encode()).hexdigest()
        found[path] = record
    return found


# -- running --------------------------------------------------------------------------


@dataclass
class Ran:
    """What a scenario's run produced."""

    root: Path
    state: Path
    commit: str | None
    before: dict[str, Entry]
    report: RunReport
    again: list[RunReport]  # the settling runs: apply, then audit


def run(scenario: Scenario, work: Path) -> Ran:
    """Plant the node under `work/root`, run the pipeline in-process, settle if asked."""
    repo_path, rev = scenario.folder / "repo", None
    if scenario.commit:
        repo = ConfigRepo(work / "repo")
        shutil.copytree(repo_path, repo.path)
        repo_path, rev = repo.path, repo.commit("scenario")
    root = work / "root"
    root.mkdir()
    state = StateDir.under(root)
    before_manifest = scenario.manifest("before") or {}
    assert set(before_manifest) <= {"tree", "applied"}, sorted(before_manifest)
    plant(root, before_manifest.get("tree", {}))
    if "applied" in before_manifest:
        state.path.mkdir(parents=True)
        state.applied.write_text(json.dumps(
            {"version": 1, "paths": records(before_manifest["applied"])}))
    before = tree_state(root)

    def once(mode: Mode) -> RunReport:
        desired = desire(load_fleet(open_snapshot(str(repo_path), rev)), NODE)
        system = LocalSystem(str(root), host_commands=scenario.host_commands,
                             backup_dir=str(state.backups))
        return converge(desired, system, state, mode, scenario.max_severity)

    report = once(scenario.mode)
    again = [once("change"), once("audit")] if scenario.settles else []
    return Ran(root, state.path, rev, before, report, again)


def project(ran: Ran) -> dict[str, Any]:
    """The report's stable parts, as report.json holds them: no times, no host paths."""
    data = json.loads(ran.report.model_dump_json(exclude_defaults=True))
    for key in REPORT_NOISE:
        data.pop(key, None)
    if data.get("config_commit") is None:
        data.pop("config_commit", None)
    for action in data.get("actions", []):
        for key in ACTION_NOISE:
            action.pop(key, None)
    text = json.dumps(data)
    text = text.replace(str(ran.root), "{root}")
    if ran.commit is not None:
        text = text.replace(ran.commit, "{commit}")
    projected: dict[str, Any] = json.loads(text)
    return projected


def node_problems(scenario: Scenario, ran: Ran) -> list[str]:
    """How the node after the run differs from what the scenario expects (see README.md)."""
    after = tree_state(ran.root)
    state = "/" + ran.state.relative_to(ran.root).as_posix()
    problems = []
    if scenario.mode == "audit":
        problems += changes(_state_of(ran.before, state), _state_of(after, state))
    manifest = scenario.manifest("after")
    if manifest is None:
        if scenario.mode == "audit":
            return problems + changes(ran.before, after)
        return changes(without_directory_mtimes(_outside_state(ran.before, state)),
                       without_directory_mtimes(_outside_state(after, state)))
    assert set(manifest) <= {"tree", "state", "applied"}, sorted(manifest)
    problems += compare_tree(manifest.get("tree", {}), _outside_state(after, state),
                             _outside_state(ran.before, state))
    if "state" in manifest:
        problems += compare_tree(manifest["state"], _own_files(after, state),
                                 _own_files(ran.before, state))
    if "applied" in manifest:
        wanted = json.loads(json.dumps(records(manifest["applied"]))
                            .replace("{commit}", ran.commit or "{commit}"))
        found = json.loads(StateDir(ran.state).applied.read_text())["paths"]
        problems += [f"applied {path}: expected {wanted.get(path)}, found {found.get(path)}"
                     for path in sorted(set(wanted) | set(found))
                     if wanted.get(path) != found.get(path)]
    return problems


def changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """Every path created, removed or touched between two trees."""
    return [f"{path}: {before.get(path)} became {after.get(path)}"
            for path in sorted(set(before) | set(after)) if before.get(path) != after.get(path)]


def _state_of(tree: dict[str, Entry], state: str) -> dict[str, Entry]:
    return {p: e for p, e in tree.items() if p == state or p.startswith(state + "/")}


def _outside_state(tree: dict[str, Entry], state: str) -> dict[str, Entry]:
    """The node's own paths: not the state directory, nor the directories made for it."""
    return {p: e for p, e in tree.items()
            if not (p == state or p.startswith(state + "/") or p in _ancestors(state))}


def _own_files(tree: dict[str, Entry], state: str) -> dict[str, Entry]:
    """reconciler's own files in its state directory (backups...) but the last-applied
    record, which `[applied]` describes, and the backups' index, whose lines hold times
    (tests/test_restore.py reads it)."""
    skipped = {str(StateDir(Path(state)).applied), str(StateDir(Path(state)).backups / INDEX)}
    return {p: e for p, e in tree.items() if p.startswith(state + "/") and p not in skipped}
