"""Real-time drift watch: inotify (through watchdog) on every managed path's directory.

Watching the parent directory of each managed path (and each managed directory
itself) sees in-place edits, `chmod`/`chown`, deletion and replace-by-rename alike.
Events are only hints: after a short quiet period the agent looks at the live state
of the managed paths they touch and audits just those whose state really moved.

The agent's own writes never count as drift: in change mode a path whose live state
is exactly what reconciler itself recorded in the last-applied state (mode, owner,
sha256, link target) is as reconciler left it, whoever's event it was. Beyond that, a
path whose state is the one the agent already looked at is an echo (a `touch`, a
second event of one write) and is dropped too. Comparing states rather than timing
windows means a hand edit made while a cycle runs is still caught afterwards.

Live state is probed through a read-only `System` rooted where the node is, so the
watch sees paths exactly as a run does: never through a symlinked parent.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from reconciler.compile.nodeconfig import DirectoryAction, FileAction, SymlinkAction, TreeAction
from reconciler.record.applied import AppliedState
from reconciler.run import Desired
from reconciler.system.interface import System, UnsafePath
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import ReadOnlySystem

Digest = Callable[[bytes, bool], str]  # content, secret -> its name in the node's records

# Everything that changes a path's content, metadata or existence; never open/close,
# which the agent's own reads would trigger.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileAttribEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent, DirAttribEvent,
]  # fmt: skip


@dataclass(frozen=True)
class Managed:
    """The actions behind one managed path; `absent` when the config wants it gone."""

    actions: frozenset[str]
    absent: bool = False


@dataclass(frozen=True)
class WatchSet:
    """The managed node paths of one node at one commit, and how to find them on the host."""

    root: str
    paths: dict[str, Managed]
    _sorted: list[str] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._sorted.extend(sorted(self.paths))

    @classmethod
    def from_desired(cls, desired: Desired, root: str) -> WatchSet:
        """Every file, tree member (and the tree's directories), directory and symlink."""
        found: dict[str, tuple[set[str], bool]] = {}

        def add(path: str, action_id: str, absent: bool = False) -> None:
            ids, was_absent = found.setdefault(path, (set(), absent))
            ids.add(action_id)
            found[path] = (ids, was_absent and absent)

        for action in desired.node.actions:
            if not isinstance(action, FileAction | TreeAction | DirectoryAction | SymlinkAction):
                continue
            path = posixpath.normpath(action.path)
            add(path, action.id, not isinstance(action, TreeAction) and action.ensure == "absent")
            if isinstance(action, TreeAction):
                for item in desired.rendered.get(action.id, []):
                    member = posixpath.normpath(item.path)
                    add(member, action.id)
                    parent = posixpath.dirname(member)
                    while parent.startswith(path + "/"):
                        add(parent, action.id)
                        parent = posixpath.dirname(parent)
        for action_id, items in desired.rendered.items():
            for item in items:
                add(posixpath.normpath(item.path), action_id, item.content is None)
        return cls(os.path.abspath(root),
                   {p: Managed(frozenset(ids), absent) for p, (ids, absent) in found.items()})

    @cached_property
    def system(self) -> System:
        """The node under `root`, read-only: what the watch probes."""
        return ReadOnlySystem(LocalSystem(self.root, host_commands=False))

    def node_path(self, host_path: str) -> str | None:
        """The node path of a host path under the root (None outside it)."""
        rel = os.path.relpath(host_path, self.root)
        if rel == ".":
            return "/"
        if rel.startswith("../") or rel == "..":
            return None
        return "/" + rel

    def touched(self, node_path: str) -> list[str]:
        """The managed paths an event on `node_path` may have changed: itself and, for a
        directory, everything managed below it."""
        hits = [node_path] if node_path in self.paths else []
        prefix = node_path.rstrip("/") + "/"
        start = bisect.bisect_left(self._sorted, prefix)
        for candidate in self._sorted[start:]:
            if not candidate.startswith(prefix):
                break
            hits.append(candidate)
        return hits

    def actions_of(self, node_paths: Iterable[str]) -> frozenset[str]:
        return frozenset(a for p in node_paths for a in self.paths[p].actions)

    def directories(self) -> set[str]:
        """Host directories to watch: each managed path's parent and each managed directory,
        or the nearest one that really is a directory (so a directory still to be created
        is seen, and a symlinked one is watched from the directory holding the link)."""
        wanted = set()
        for path in self.paths:
            wanted.add(posixpath.dirname(path))
            wanted.add(path)
        dirs = set()
        for node_dir in wanted:
            while not self._is_real_dir(node_dir) and node_dir != "/":
                node_dir = posixpath.dirname(node_dir)
            if self._is_real_dir(node_dir):
                dirs.add(self.system.host_path(node_dir))
        return dirs

    def _is_real_dir(self, node_path: str) -> bool:
        try:
            found = self.system.lstat(node_path)
        except (OSError, UnsafePath):
            return False
        return found is not None and found.kind == "directory"


class LiveState(NamedTuple):
    """The live state of one path, in the terms the last-applied record uses."""

    kind: str
    mode: int
    uid: int
    gid: int
    sha256: str | None = None
    target: str | None = None


_KINDS = frozenset({"file", "directory", "symlink"})
# A path behind a symlinked parent: a run refuses it, so it is never as recorded.
_UNSAFE = LiveState("unsafe", -1, -1, -1)


def _plain(content: bytes, secret: bool) -> str:
    return hashlib.sha256(content).hexdigest()


def probe_path(system: System, path: str, digest: Digest = _plain,
               secret: bool = False) -> LiveState | None:
    """A live probe of one node path: kind, permissions, owner, and content hash (files,
    named as the node's records name them: keyed for a secret file) or link target
    (symlinks); None when it does not exist."""
    try:
        found = system.lstat(path)
    except UnsafePath:
        return _UNSAFE
    if found is None:
        return None
    kind = found.kind if found.kind in _KINDS else "other"
    live = LiveState(kind, found.mode, found.uid, found.gid, target=found.link_target)
    if kind != "file":
        return live
    try:
        content = system.read(path)
    except (OSError, UnsafePath):  # gone, unreadable, or swapped for a FIFO or a link
        return live._replace(sha256="unreadable")
    return live._replace(sha256=digest(content, secret))


_UNSEEN = LiveState("unseen", -1, -1, -1)


class DriftFilter:
    """Decides which touched paths really drifted, remembering what it has seen."""

    def __init__(self) -> None:
        self._seen: dict[str, LiveState | None] = {}

    def drifted(
        self, watchset: WatchSet, node_paths: Iterable[str], applied: AppliedState | None,
        digest: Digest = _plain,
    ) -> set[str]:  # fmt: skip
        """The managed paths among `node_paths` whose live state is neither what reconciler
        recorded writing (`applied`, in change mode, its contents named by `digest`) nor
        what this filter saw last."""
        moved = set()
        for path in node_paths:
            managed = watchset.paths.get(path)
            if managed is None:
                continue
            record = applied.paths.get(path) if applied is not None else None
            live = probe_path(watchset.system, path, digest, bool(record and record.secret))
            seen = self._seen.get(path, _UNSEEN)
            self._seen[path] = live
            if record is not None and live is not None and record.matches(
                    live.kind, live.mode, live.uid, live.gid, sha256=live.sha256,
                    target=live.target):
                continue
            if live is None and managed.absent:
                continue
            if live != seen:
                moved.add(path)
        return moved

    def keep_only(self, watchset: WatchSet) -> None:
        """Forget paths the config no longer manages."""
        self._seen = {p: f for p, f in self._seen.items() if p in watchset.paths}


class Debounce:
    """Collects event paths until `quiet` seconds pass without one (at most `longest`)."""

    def __init__(self, quiet: float = 0.2, longest: float = 1.0) -> None:
        self.quiet = quiet
        self.longest = longest
        self._paths: set[str] = set()
        self._first: float | None = None
        self._last: float = 0.0

    def add(self, path: str, now: float) -> None:
        self._paths.add(path)
        if self._first is None:
            self._first = now
        self._last = now

    def deadline(self) -> float | None:
        if self._first is None:
            return None
        return min(self._last + self.quiet, self._first + self.longest)

    def ready(self, now: float) -> bool:
        due = self.deadline()
        return due is not None and now >= due

    def take(self) -> set[str]:
        paths, self._paths, self._first = self._paths, set(), None
        return paths


class _Forward(FileSystemEventHandler):
    """Hands every path of an event to the agent (from watchdog's thread)."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, event.dest_path):
            if path:
                self._notify(os.fsdecode(path))


class Watcher:
    """One inotify watch per directory of the watch set, kept in step with it."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        # watchdog logs a stopped emitter's last read as an error; it is expected here.
        logging.getLogger("watchdog").setLevel(logging.CRITICAL)
        self._handler = _Forward(notify)
        self._observer: BaseObserver = InotifyObserver()
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}

    def start(self) -> None:
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    @property
    def directories(self) -> set[str]:
        return set(self._watches)

    def follow(self, watchset: WatchSet | None) -> tuple[int, int, list[str]]:
        """Watch exactly the directories of `watchset` (re-watching any that was replaced);
        returns how many watches were added and dropped, and `dir: reason` for each
        directory the kernel refused to watch (inotify limits)."""
        wanted: dict[str, tuple[int, int]] = {}
        for directory in watchset.directories() if watchset is not None else ():
            try:
                st = os.lstat(directory)
            except OSError:
                continue
            wanted[directory] = (st.st_dev, st.st_ino)
        # A deleted directory's emitter stops itself; its inode may be reused at once by
        # a directory created in its place, so liveness tells a replaced one apart.
        running = {e.watch for e in self._observer.emitters if e.is_alive()}
        dropped = 0
        for directory, (watch, identity) in list(self._watches.items()):
            stopped = self._observer.is_alive() and watch not in running
            if wanted.get(directory) != identity or stopped:
                self._unschedule(watch)
                del self._watches[directory]
                dropped += 1
        added, failed = 0, []
        for directory, identity in wanted.items():
            if directory in self._watches:
                continue
            try:
                watch = self._observer.schedule(self._handler, directory, recursive=False,
                                                event_filter=EVENTS)
            except FileNotFoundError:
                continue  # vanished since we looked: the next follow() catches up
            except OSError as exc:
                failed.append(f"{directory}: {exc.strerror or exc}")
                continue
            self._watches[directory] = (watch, identity)
            added += 1
        return added, dropped, failed

    def _unschedule(self, watch: ObservedWatch) -> None:
        # Its emitter may have stopped already (the directory was deleted).
        with contextlib.suppress(KeyError, OSError):
            self._observer.unschedule(watch)
