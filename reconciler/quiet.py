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
Anything different upstream takes the full run. When only some paths differ on the node,
the run plans and applies only their actions, against the desired state the settled run
kept beside the record (`STATE/desired.pack`, read back by record/desired.py).

Only nodes whose every action is a plain file, directory (without purge) or symlink are
remembered: their state is entirely in what `lstat` and the content show. Secret files
are not (their plain hash would be kept on disk), nor packages, services, accounts or
commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from reconciler import __version__
from reconciler.atomicfile import read_own, write_atomic
from reconciler.record import metrics
from reconciler.statedir import StateDir

if TYPE_CHECKING:
    from reconciler.compile.nodeconfig import NodeConfig
    from reconciler.facts.model import Facts
    from reconciler.record.report import RunReport
    from reconciler.render.rendered import RenderedFile
    from reconciler.source.snapshot import Snapshot



class Desired(Protocol):
    """The desired state a run converged to (`run.Desired`)."""

    @property
    def node(self) -> NodeConfig: ...
    @property
    def rendered(self) -> dict[str, list[RenderedFile]]: ...
    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def facts(self) -> Facts | None: ...


QUIET_FILE = "quiet.json"
PACK = "desired.pack"  # the desired state a settled run converged to (record/desired.py)
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


@dataclass(frozen=True)
class Drifted:
    """A node some of whose paths are no longer as the settled run left them, with
    nothing upstream changed: the record's key, the paths that differ, and the recorded
    entry of every path."""

    settled: InSync
    key: dict[str, Any]
    paths: tuple[str, ...]
    entries: dict[str, Entry]

    @property
    def recorded(self) -> dict[str, str | None]:
        """The recorded content hash (or link target) of every path."""
        return {path: entry[5] for path, entry in self.entries.items()}


def in_sync(state: StateDir, root: str, key: Callable[[bool], dict[str, Any]],
            hand_over: bool = False) -> InSync | None:
    """What the last settled run reported, when the node is exactly as it left it under
    the same key (`key(True)` computes it with the facts' digest, for a config whose
    templates read facts); None when anything differs or there is no record. With
    `hand_over`, the full run this process starts next takes the paths found differing
    from here (`compare`)."""
    found = compare(state, root, key, hand_over)
    return found.settled if found is not None and not found.paths else None


# The paths a quiet answer found differing, by quiet record, with the record's stamp
# then: a plain `apply`, `audit` or `run` compares before the full run is even imported
# (`entry.py`), and the run it hands a drifted node to, the very next comparison in the
# process, takes that answer instead of reading every path again.
_compared: dict[str, tuple[str, tuple[str, ...]]] = {}


def compare(state: StateDir, root: str, key: Callable[[bool], dict[str, Any]],
            hand_over: bool = False) -> Drifted | None:
    """The paths that differ from the last settled run's record under the same key (none:
    in sync); None when the key differs, there is no record, or a directory above a
    managed path is a symlink. With `hand_over`, the paths found are kept for the next
    comparison of the same record in this process (and for no other)."""
    path = quiet_path(state)
    before = _compared.pop(path, None)
    try:
        recorded_at = stamp(path)
        record = json.loads(read_own(path))
        recorded = record["key"]
        if recorded_at is None or recorded != key(recorded["facts"] is not None):
            return None
        entries = record["entries"]
        if not _parents_are_real(root, [entry[0] for entry in entries]):
            return None
        if before is not None and before[0] == recorded_at:
            paths = before[1]
        else:
            paths = tuple(entry[0] for entry in entries if live_entry(root, entry[0]) != entry)
        if hand_over and paths:
            _compared[path] = (recorded_at, paths)
        report = record["report"]
        if not isinstance(report, dict):
            return None
        return Drifted(InSync(report), recorded, paths, {entry[0]: entry for entry in entries})
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
            facts: Facts | None) -> Drifted | None:
    """`compare` for a run that has gathered the node's `facts` (None: not gathered)."""
    digest = facts_digest(facts.model_dump_json()) if facts is not None else None
    return compare(state, root, lambda with_facts: key_of(
        source, node, root, state, identity, digest if with_facts else None))


def action_paths(node: NodeConfig, rendered: dict[str, list[RenderedFile]]
                 ) -> dict[str, list[str]] | None:
    """The paths each of the node's actions manages (its `rendered` files), by action id,
    or None when one action is not a plain file, directory or symlink (its state is not
    all in `lstat` and the content)."""
    paths: dict[str, list[str]] = {}
    for action in node.actions:
        if action.kind == "file" and not action.secret:
            paths[action.id] = [item.path for item in rendered.get(action.id, [])]
        elif (action.kind == "directory" and not action.purge) or action.kind == "symlink":
            paths[action.id] = [action.path]
        else:
            return None
    return paths


def _reads_facts(desired: Desired) -> bool:
    """Whether any template of the commit mentions facts (then they feed the config)."""
    snapshot = desired.snapshot
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
             report: RunReport, unchanged: Mapping[str, Entry] | None = None) -> str | None:
    """After a change-mode run: record what the node now is when the run left it exactly
    as configured; otherwise drop the record, so the next run is a full one. `unchanged`
    are the entries of paths a partial run found as recorded and left alone (not read
    again). Writes only when the record changes. Returns why it could not (the run
    failed), else None."""
    try:
        _remember(state, source, root, identity, desired, report, unchanged or {})
    except OSError as exc:
        return f"{quiet_path(state)}: could not record the quiet state: {exc.strerror or exc}"
    return None


def _remember(state: StateDir, source: str, root: str, identity: str, desired: Desired,
              report: RunReport, unchanged: Mapping[str, Entry]) -> None:
    counts = report.counts
    settled = report.result in ("in-sync", "changed") and not (
        counts.pending or counts.held or counts.failed or counts.orphans or counts.skipped)
    by_action = action_paths(desired.node, desired.rendered) if settled else None
    paths = [path for found in by_action.values() for path in found] \
        if by_action is not None else None
    target = quiet_path(state)
    if paths is None:
        if os.path.exists(target):
            os.unlink(target)
        _drop(state)
        return
    try:
        existing = read_own(target)
        before = json.loads(existing)["key"]
    except (OSError, ValueError, LookupError, TypeError):
        existing, before = b"", {}
    # The same config and reconciler read facts or not as they did: no template re-read.
    same = {name: before.get(name) for name in ("format", "version", "source")} == {
        "format": FORMAT, "version": __version__, "source": source}
    facts = None
    if (before.get("facts") is not None) if same else _reads_facts(desired):
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
                       "entries": [unchanged.get(path) or live_entry(root, path)
                                   for path in paths]}).encode()
    _keep(state, key, desired.node, desired.rendered)
    if existing != data:
        write_atomic(target, data)


def pack_path(state: StateDir) -> str:
    return str(state.path / PACK)


def _keep(state: StateDir, key: dict[str, Any], node: NodeConfig,
          rendered: dict[str, list[RenderedFile]]) -> None:
    """Keep `node` and its `rendered` files under `key`; writes only when they changed."""
    files: list[list[Any]] = []
    blobs: list[bytes] = []
    offset = 0
    for action_id, items in rendered.items():
        for item in items:
            content = item.content
            size = -1 if content is None else len(content)
            files.append([item.path, action_id, item.source, offset, size])
            if content is not None:
                blobs.append(content)
                offset += size
    header = json.dumps({"key": key, "files": files}).encode()
    config = node.model_copy(update={"variables": {}}).model_dump_json().encode()  # one line
    data = b"\n".join([header, config, b"".join(blobs)])
    target = pack_path(state)
    try:
        if read_own(target) == data:
            return
    except FileNotFoundError:
        pass
    write_atomic(target, data)


def _drop(state: StateDir) -> None:
    """No settled desired state to keep (the quiet record is dropped too)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pack_path(state))


def command_options(args: Sequence[str], valued: Collection[str],
                    flags: Collection[str] = ()) -> dict[str, str] | None:
    """The options of a command line a quiet path may answer (`entry.py`, `quietrun.py`):
    each of `valued` with its value (`--name value` or `--name=value`), each of `flags`
    alone; None for any other word and for a `--format` other than text, which the full
    command line interface answers (or says what is wrong with)."""
    found: dict[str, str] = {}
    words = iter(args)
    for word in words:
        name, equals, value = word.partition("=")
        if name in flags and not equals:
            continue
        if name not in valued:
            return None
        if not equals:
            following = next(words, None)
            if following is None:
                return None
            value = following
        found[name] = value
    return found if found.get("--format", "text") == "text" else None


@contextlib.contextmanager
def node_lock(state: StateDir) -> Iterator[None]:
    """The node lock for a quiet answer: taken without waiting, and without writing the
    holder's name in it as a full run does. OSError when another run holds it or it
    cannot be opened: then the full run, which waits for it, decides."""
    lock = os.open(state.lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(lock)
