"""The quiet cycle: when nothing upstream changed, check the node without compiling.

A change-mode run that leaves the node exactly as its config wants it remembers, in
`STATE/quiet.json`, what it was run from (the key: reconciler's version, the node, the
root, the config — the working tree's fingerprint, or the commit a `run` enforces —
the last-applied record, the age identity, the account database, and the facts' digest
when a template mentions facts) and the live state of every managed path (kind, mode,
owner, and content hash or link target). The next run with the same key compares the
live paths with that record and stops there when they all match: no compile, render or
plan. A plain `apply` or `audit` does so before anything else is imported (`entry.py`:
no pydantic, Jinja2, lxml, rich or click) and writes only the run's record, as a full run
in sync does (`record_quiet`: last-run, last-success and metrics, from the settled run's
report kept in the record); `run` does so once it has fetched and chosen its commit.
Anything different, upstream or on the node, takes the full run.

Only nodes whose every action is a plain file, directory (without purge) or symlink are
remembered: their state is entirely in what `lstat` and the content show. Secret files
are not (their plain hash would be kept on disk), nor packages, services, accounts or
commands.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from reconciler import __version__
from reconciler.atomicfile import write_atomic
from reconciler.record import metrics
from reconciler.statedir import StateDir

if TYPE_CHECKING:
    from reconciler.compile.inventory import Fleet
    from reconciler.compile.nodeconfig import NodeConfig
    from reconciler.facts.model import Facts
    from reconciler.record.report import RunReport
    from reconciler.render.renderer import RenderedFile



class Desired(Protocol):
    """The desired state a run converged to (`run.Desired`)."""

    @property
    def node(self) -> NodeConfig: ...
    @property
    def rendered(self) -> dict[str, list[RenderedFile]]: ...
    @property
    def fleet(self) -> Fleet: ...
    @property
    def facts(self) -> Facts | None: ...


QUIET_FILE = "quiet.json"
FORMAT = 2
_CHUNK = 1 << 20
Entry = list[Any]  # [path, kind, mode, uid, gid, sha256 or link target or None]


def quiet_path(state: StateDir) -> str:
    return str(state.path / QUIET_FILE)


def worktree_fingerprint(repo: str) -> str:
    """Every file of a checkout (outside .git) by path, size, mtime and inode: any edit,
    addition or removal changes it, without reading a byte."""
    digest = hashlib.sha256()
    top = os.path.realpath(repo)
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(top, rel)) as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                if entry.name == ".git" and not rel:
                    continue
                info = entry.stat(follow_symlinks=False)
                child = f"{rel}/{entry.name}" if rel else entry.name
                if stat.S_ISDIR(info.st_mode):
                    pending.append(child)
                digest.update(f"{child}\0{info.st_mode}\0{info.st_size}\0"
                              f"{info.st_mtime_ns}\0{info.st_ino}\n".encode())
    return digest.hexdigest()


def stamp(path: str | os.PathLike[str]) -> str | None:
    """A file's (or directory's) size, mtime and inode: changed by any rewrite."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"


def key_of(source: str, node: str, root: str, state: StateDir, identity: str,
           facts: str | None) -> dict[str, Any]:
    """What a run's desired state follows from, as far as a quiet cycle can tell: the
    config, the node and root, the last-applied record, the node's age identity and
    account names (which owners' names resolve through), and the facts when they matter."""
    accounts = [stamp(os.path.join(root, "etc", name)) for name in ("passwd", "group")]
    return {"format": FORMAT, "version": __version__, "node": node, "root": root,
            "source": source, "applied": stamp(state.applied),
            "identity": stamp(identity), "accounts": accounts, "facts": facts}


def live_entry(root: str, path: str) -> Entry:
    """The state of node path `path` under `root` as a quiet record keeps it."""
    full = os.path.join(root, path.lstrip("/"))
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        return [path, "absent", None, None, None, None]
    extra: str | None = None
    if stat.S_ISREG(info.st_mode):
        kind = "file"
        digest = hashlib.sha256()
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        extra = digest.hexdigest()
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    elif stat.S_ISLNK(info.st_mode):
        kind, extra = "symlink", os.readlink(full)
    else:
        kind = "other"
    return [path, kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, extra]


def _parents_are_real(root: str, paths: Iterable[str]) -> bool:
    """No directory above a managed path is a symlink (the engine never follows one)."""
    real_root = os.path.realpath(root)
    for parent in {os.path.dirname(path) for path in paths}:
        full = os.path.join(real_root, parent.lstrip("/"))
        if os.path.exists(full) and os.path.realpath(full) != os.path.normpath(full):
            return False
    return True


@dataclass(frozen=True)
class InSync:
    """What the settled run that left the node so would report now: its report in JSON
    form, in sync (`RunReport` fields; its time and mode are the settled run's)."""

    report: dict[str, Any]

    @property
    def count(self) -> int:
        return int(self.report["counts"]["in_sync"])

    @property
    def ceiling(self) -> str:
        return str(self.report["ceiling"])

    @property
    def mode_from(self) -> str | None:
        found = self.report["mode_from"]
        return found if isinstance(found, str) else None


def in_sync(state: StateDir, root: str, key: Callable[[bool], dict[str, Any]]) -> InSync | None:
    """What the last settled run reported, when the node is exactly as it left it under
    the same key (`key(True)` computes it with the facts' digest, for a config whose
    templates read facts); None when anything differs or there is no record."""
    try:
        with open(quiet_path(state), "rb") as handle:
            record = json.loads(handle.read())
        recorded = record["key"]
        if recorded != key(recorded["facts"] is not None):
            return None
        entries = record["entries"]
        if not _parents_are_real(root, [entry[0] for entry in entries]):
            return None
        if any(live_entry(root, entry[0]) != entry for entry in entries):
            return None
        report = record["report"]
        return InSync(report) if isinstance(report, dict) else None
    except (OSError, ValueError, LookupError, TypeError):
        return None


def record_quiet(state: StateDir, found: InSync, *, mode: str, mode_from: str | None,
                 ceiling: str, started: datetime, duration_s: float,
                 commit: str | None = None, source: Mapping[str, Any] | None = None,
                 metrics_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Record a quiet run where a full one records its runs, as it records one in sync:
    `last-run.json`, `last-success.json` and the metrics (`metrics_file`, default the
    state directory's). No history commit: a run in sync has nothing new to say there.
    `commit` is the config commit (default: the settled run's), `source` the report's
    account of where it came from (`SourceReport` fields). Returns the report recorded
    (JSON form)."""
    report = {**found.report, "mode": mode, "mode_from": mode_from, "ceiling": ceiling,
              "started": started.isoformat(), "duration_s": round(duration_s, 4),
              "source": dict(source) if source is not None else None}
    if commit is not None:
        report["config_commit"] = commit
    success = {"time": report["started"], "commit": report["config_commit"]}
    target = metrics_file if metrics_file is not None else state.metrics
    write_atomic(state.last_run, json.dumps(report, indent=2).encode() + b"\n")
    write_atomic(state.last_success, json.dumps(success).encode())
    write_atomic(target, metrics.text(report).encode(), mode=0o644)
    return report


def checked(state: StateDir, source: str, node: str, root: str, identity: str,
            facts: Facts | None) -> InSync | None:
    """`in_sync` for a run that has gathered the node's `facts` (None: not gathered)."""
    digest = facts_digest(facts.model_dump_json()) if facts is not None else None
    return in_sync(state, root, lambda with_facts: key_of(
        source, node, root, state, identity, digest if with_facts else None))


def _managed_paths(desired: Desired) -> list[str] | None:
    """Every path the node's actions manage, or None when one action is not a plain
    file, directory or symlink (its state is not all in `lstat` and the content)."""
    paths: list[str] = []
    for action in desired.node.actions:
        if action.kind == "file" and not action.secret:
            paths += [item.path for item in desired.rendered.get(action.id, [])]
        elif (action.kind == "directory" and not action.purge) or action.kind == "symlink":
            paths.append(action.path)
        else:
            return None
    return paths


def _reads_facts(desired: Desired) -> bool:
    """Whether any template of the commit mentions facts (then they feed the config)."""
    snapshot = desired.fleet.snapshot
    pending = ["templates"]
    while pending:
        directory = pending.pop()
        for name in snapshot.listdir(directory):
            rel = f"{directory}/{name}"
            if snapshot.is_dir(rel):
                pending.append(rel)
            elif b"facts" in snapshot.read(rel):
                return True
    return False


def facts_digest(facts_json: str) -> str:
    return hashlib.sha256(facts_json.encode()).hexdigest()


def remember(state: StateDir, source: str, root: str, identity: str, desired: Desired,
             report: RunReport) -> str | None:
    """After a change-mode run: record what the node now is when the run left it exactly
    as configured; otherwise drop the record, so the next run is a full one. Writes only
    when the record changes. Returns why it could not (the run failed), else None."""
    try:
        _remember(state, source, root, identity, desired, report)
    except OSError as exc:
        return f"{quiet_path(state)}: could not record the quiet state: {exc.strerror or exc}"
    return None


def _remember(state: StateDir, source: str, root: str, identity: str, desired: Desired,
              report: RunReport) -> None:
    counts = report.counts
    settled = report.result in ("in-sync", "changed") and not (
        counts.pending or counts.held or counts.failed or counts.orphans or counts.skipped)
    paths = _managed_paths(desired) if settled else None
    target = quiet_path(state)
    if paths is None:
        if os.path.exists(target):
            os.unlink(target)
        return
    facts = None
    if _reads_facts(desired):
        if desired.facts is None:
            return
        facts = facts_digest(desired.facts.model_dump_json())
    key = key_of(source, desired.node.name, root, state, identity, facts)
    # Every path the run found in sync or made so is in sync next time.
    now_in_sync = report.model_copy(update={
        "mode": "change", "result": "in-sync", "exit_code": 0, "actions": [], "orphans": [],
        "counts": type(counts)(in_sync=counts.in_sync + counts.applied), "problems": [],
        "notes": [], "source": None, "facts": None, "health": [], "revert": None})
    data = json.dumps({"key": key, "report": now_in_sync.model_dump(mode="json"),
                       "entries": [live_entry(root, path) for path in paths]}).encode()
    try:
        with open(target, "rb") as handle:
            if handle.read() == data:
                return
    except FileNotFoundError:
        pass
    write_atomic(target, data)
