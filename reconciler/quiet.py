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
kept beside the record (`STATE/desired.pack`: record/desired.py, which also
writes the record after a change-mode run).

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
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.atomicfile import read_own, write_atomic
from reconciler.record import metrics
from reconciler.statedir import StateDir

if TYPE_CHECKING:
    from reconciler.facts.model import Facts


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


def live_entry(root: str, path: str, written: bytes | None = None) -> Entry:
    """The state of node path `path` under `root` as a quiet record keeps it. A regular
    file of the size of `written`, what the run just left there, is hashed from that
    instead of read again: should the file have changed since, the next quiet cycle
    finds it differs from the record and plans it, like any edit."""
    full = os.path.join(root, path.lstrip("/"))
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        return [path, "absent", None, None, None, None]
    extra: str | None = None
    if stat.S_ISREG(info.st_mode) and written is not None and len(written) == info.st_size:
        kind, extra = "file", hashlib.sha256(written).hexdigest()
    elif stat.S_ISREG(info.st_mode):
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
    nothing upstream changed: the record's key and stamp, the live entry of each path
    that differs, and the recorded entry of every path."""

    settled: InSync
    key: dict[str, Any]
    stamp: str
    live: dict[str, Entry]
    entries: dict[str, Entry]

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths that differ from the record."""
        return tuple(self.live)

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
    found = compare(state, root, key)
    if found is not None and hand_over:
        hand_over_paths(state, found)
    return found.settled if found is not None and not found.paths else None


# The paths a quiet answer found differing (with their live entries), by quiet record,
# with the record's stamp then: a plain `apply`, `audit` or `run` compares before the
# full run is even imported (`entry.py`), and the run it hands a drifted node to, the
# very next comparison in the process, takes that answer instead of reading every path
# again.
_compared: dict[str, tuple[str, dict[str, Entry]]] = {}


def hand_over_paths(state: StateDir, found: Drifted) -> None:
    """The paths `found` differing are taken by the next comparison of the same record in
    this process (and by no other)."""
    if found.live:
        _compared[quiet_path(state)] = (found.stamp, found.live)


def compare(state: StateDir, root: str, key: Callable[[bool], dict[str, Any]]
            ) -> Drifted | None:
    """The paths that differ from the last settled run's record under the same key (none:
    in sync); None when the key differs, there is no record, or a directory above a
    managed path is a symlink."""
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
            live = before[1]
        else:
            live = {}
            for entry in entries:
                current = live_entry(root, entry[0])
                if current != entry:
                    live[entry[0]] = current
        report = record["report"]
        if not isinstance(report, dict):
            return None
        return Drifted(InSync(report), recorded, recorded_at, live,
                       {entry[0]: entry for entry in entries})
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
    save_report(state, report, metrics_file)
    return report


def save_report(state: StateDir, report: Mapping[str, Any],
                metrics_file: str | os.PathLike[str] | None = None) -> None:
    """Record a successful run's `report` (JSON form) as a full run records it:
    `last-run.json`, `last-success.json` and the metrics (`metrics_file`, default the
    state directory's)."""
    success = {"time": report["started"], "commit": report["config_commit"]}
    target = metrics_file if metrics_file is not None else state.metrics
    write_atomic(state.last_run, json.dumps(report, indent=2).encode() + b"\n")
    write_atomic(state.last_success, json.dumps(success).encode())
    write_atomic(target, metrics.text(report).encode(), mode=0o644)


def checked(state: StateDir, source: str, node: str, root: str, identity: str,
            facts: Facts | None) -> Drifted | None:
    """`compare` for a run that has gathered the node's `facts` (None: not gathered)."""
    digest = facts_digest(facts.model_dump_json()) if facts is not None else None
    return compare(state, root, lambda with_facts: key_of(
        source, node, root, state, identity, digest if with_facts else None))


def facts_digest(facts_json: str) -> str:
    return hashlib.sha256(facts_json.encode()).hexdigest()


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
