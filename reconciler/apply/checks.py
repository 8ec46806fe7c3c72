"""Service-level checks in a run: the whole configuration, checked before it is used.

An action with `<check>`s (a service, a command, or a file or tree itself) is *guarded*:
its checks run once it and every action notifying it have been applied, before it is
started, reloaded, restarted or run. Before a guarded source changes a path, the path's
live state is kept (bytes, mode, owner, link target, or that it was missing), so that
when a check fails exactly the paths this run changed for that action are put back,
each atomically, and nothing is reloaded with a configuration its daemon refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from reconciler.actions.files import CreateFile
from reconciler.actions.symlink import Link
from reconciler.apply.ledger import Ledger
from reconciler.compile.nodeconfig import Action, Check, NodeConfig
from reconciler.plan.change import Change
from reconciler.record.applied import Applied
from reconciler.system.confine import Candidate, Unconfined, run_candidate, run_in_root
from reconciler.system.interface import CommandResult, Stat, System, UnsafePath

# Kinds whose own changes are the configuration: their checks run after those changes.
WRITER_KINDS = frozenset({"file", "tree", "directory", "symlink"})
OUTPUT_LIMIT = 2000  # characters of a checker's output kept in the report
SECRET_OUTPUT = "output withheld: a secret file changed"
PUT_BACK_ERRORS = (OSError, UnsafePath)


@dataclass(frozen=True)
class Before:
    """A path as it was before this run first changed it."""

    path: str
    stat: Stat | None
    content: bytes | None  # a regular file's bytes
    record: Applied | None  # the last-applied record of the path before this run's change
    secret: bool
    order: int = 0  # when it was first touched in the run (among a Guard's)


@dataclass
class CheckOutcome:
    """What one check said: `passed`, `failed` (the paths put back), `would-fail` (audit:
    the pending changes laid over the node fail it), or `not-run` (why)."""

    check: Check
    status: Literal["passed", "failed", "would-fail", "not-run"]
    output: str = ""
    detail: str | None = None
    restored: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """One line for people: which check, of what, and how it ended."""
        return f"check `{self.check.run}` {self.status}" + \
            (f": {self.detail}" if self.detail else "")


def checked_sources(node: NodeConfig) -> dict[str, set[str]]:
    """Each action with checks → its own id and the ids of every action notifying it:
    what its checks check."""
    sources = {action.id: {action.id} for action in node.actions if action.checks}
    for action in node.actions:
        for notify in action.notify:
            if notify.target in sources:
                sources[notify.target].add(action.id)
    return sources


class Guard:
    """The guarded actions of one node, the actions whose changes each one checks, and
    the live state of every path those changes touched, as it was before the run."""

    def __init__(self, node: NodeConfig) -> None:
        self._sources = checked_sources(node)
        self._watched = set().union(*self._sources.values()) if self._sources else set()
        self._before: dict[str, dict[str, Before]] = {}

    def remember(self, system: System, ledger: Ledger, change: Change) -> None:
        """Keep the live state of the path `change` is about to touch, the first time
        a guarded source touches it in this run."""
        if change.action.id not in self._watched or change.path is None:
            return
        kept = self._before.setdefault(change.action.id, {})
        if change.path in kept:
            return
        live = system.lstat(change.path)
        content = system.read(change.path) if live is not None and live.kind == "file" else None
        kept[change.path] = Before(change.path, live, content, ledger.recorded(change.path),
                                   change.secret, sum(len(k) for k in self._before.values()))

    def sources(self, action: Action) -> set[str]:
        """The ids of `action` and of every action notifying it."""
        return self._sources.get(action.id, set())

    def checks_after(self, action: Action) -> bool:
        """Whether `action`'s checks come after its own changes (it writes the files)."""
        return action.kind in WRITER_KINDS

    def touched(self, action: Action, applied: Callable[[str], list[str]]) -> list[Before]:
        """What this run changed for `action`: the kept state of every path an applied
        change of it or of an action notifying it touched, in the order first touched."""
        found: list[Before] = []
        for source in self.sources(action):
            kept = self._before.get(source, {})
            found += [kept[path] for path in applied(source) if path in kept]
        return sorted(found, key=lambda before: before.order)

    def run(self, system: System, ledger: Ledger, action: Action, touched: list[Before]) -> \
            list[CheckOutcome]:
        """Run `action`'s checks in order against the live files; at the first failure put
        `touched` back (last touched first) and stop."""
        results: list[CheckOutcome] = []
        secret = any(before.secret for before in touched)
        for check in action.checks:
            failed = _check_once(check, partial(run_in_root, system, check.run,
                                                timeout=check.timeout), secret, "failed")
            if failed.status != "failed":
                results.append(failed)
                continue
            for before in reversed(touched):
                try:
                    put_back(system, before)
                except PUT_BACK_ERRORS as error:  # say so, and put back the rest
                    failed.detail = f"{failed.detail}; could not put back {before.path}: {error}"
                    continue
                ledger.put_back(before.path, before.record)
                failed.restored.append(before.path)
            failed.restored.reverse()
            results.append(failed)
            break
        return results


def _check_once(check: Check, run: Callable[[], CommandResult], secret: bool,
                failure: Literal["failed", "would-fail"]) -> CheckOutcome:
    """One check run: passed, not-run (it cannot be confined to the node), or `failure`
    with the checker's output (withheld when a secret file is involved)."""
    try:
        result = run()
    except Unconfined as why:
        return CheckOutcome(check, "not-run", detail=f"not checked: {why}")
    if result.returncode == 0 and not result.timed_out:
        return CheckOutcome(check, "passed")
    how = "timed out" if result.timed_out else f"exited {result.returncode}"
    output = SECRET_OUTPUT if secret else (result.stdout + result.stderr).strip()[-OUTPUT_LIMIT:]
    return CheckOutcome(check, failure, output, f"{how}: {output or 'no output'}")


def would_pass(system: System, action: Action, pending: list[Change]) -> list[CheckOutcome]:
    """Audit: run `action`'s checks on the node with its `pending` changes laid over it
    (in a sandbox, nothing written), until one would fail."""
    files = tuple((c.path, c.content) for c in pending
                  if isinstance(c, CreateFile) and c.path is not None)
    links = tuple((c.path, c.action.target) for c in pending
                  if isinstance(c, Link) and c.path is not None)
    candidate = Candidate(files, links)
    secret = any(c.secret for c in pending)
    results: list[CheckOutcome] = []
    for check in action.checks:
        outcome = _check_once(check, partial(run_candidate, system, check.run, candidate,
                                             timeout=check.timeout), secret, "would-fail")
        results.append(outcome)
        if outcome.status == "would-fail":
            break
    return results


def put_back(system: System, before: Before) -> None:
    """Make a path again what it was before the run: its bytes, mode and owner, its
    link, or its absence (each write atomic, as any other)."""
    was = before.stat
    live = system.lstat(before.path)
    if was is None:
        if live is not None:
            system.remove(before.path, secret=before.secret)
    elif was.kind == "file":
        assert before.content is not None, "a file's bytes are kept with its state"
        system.write_atomic(before.path, before.content, was.mode, was.uid, was.gid,
                            secret=before.secret)
    elif was.kind == "symlink":
        assert was.link_target is not None, "a symlink's target is kept with its state"
        system.symlink(before.path, was.link_target, uid=was.uid, gid=was.gid)
    elif was.kind == "directory":
        if live is None:
            system.mkdir(before.path, was.mode, was.uid, was.gid)
        else:
            system.chmod(before.path, was.mode)
            system.chown(before.path, was.uid, was.gid)
