"""Publish queued reports: commit each into the node's chain, push the chain's ref.

A run only queues its report (`outbox/`, one file per report) and starts this in the
background (`python -m reconciler.fleet.pusher`), so publishing never delays or fails
the run. Here, holding `push.lock`:

1. every queued report, oldest first, becomes a signed commit on the local chain and
   leaves the queue (a report already at the chain's tip is not committed twice);
2. the ref is pushed to the reports URL, and when that fails to each mirror in turn,
   each push bounded by `timeout` (the process group is killed after it);
3. `pushed.json` records the chain's tip and what each URL last accepted.

A report that could not be pushed stays in the chain; the next run sees the chain
ahead of what the reports URL accepted and starts a push again. At most one pusher
works and one waits (`wait.lock`): a third has nothing to add, since the waiting one
drains the queue after the working one is done.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.fleet.chain import Chain, ChainError
from reconciler.git import Git

OUTBOX = "outbox"
REPO = "repo.git"
PUSHED = "pushed.json"
PUSH_LOCK = "push.lock"
WAIT_LOCK = "wait.lock"


@dataclass
class Outcome:
    """What one drain did: reports committed, where the ref went, and what failed."""

    committed: int = 0
    tip: str | None = None
    pushed_to: str | None = None
    errors: list[str] = field(default_factory=list)
    busy: bool = False  # another pusher is already waiting to do this work

    @property
    def ok(self) -> bool:
        return not self.errors and not self.busy


def read_json(path: Path) -> dict[str, object]:
    """A small JSON state file as a dict; {} when it is missing or unreadable (the
    state it holds is then rebuilt: at worst a report is pushed or queued again)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: object) -> None:
    """Replace a small JSON state file (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_pushed(reports_dir: Path) -> dict[str, object]:
    """`pushed.json`: {"tip": local chain tip, "urls": {url: sha}, "last": {...}}."""
    return read_json(reports_dir / PUSHED)


def queued(reports_dir: Path) -> list[Path]:
    """The reports waiting in the outbox, oldest first."""
    try:
        names = sorted(n for n in os.listdir(reports_dir / OUTBOX) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    return [reports_dir / OUTBOX / name for name in names]


def _try_lock(path: Path, block: bool) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None if it is taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def drain(reports_dir: Path, node: str, key: Path, urls: Sequence[str],
          timeout: float) -> Outcome:
    """Commit the queued reports and push the chain (see the module's docstring)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    waiting = _try_lock(reports_dir / WAIT_LOCK, block=False)
    if waiting is None:
        return Outcome(busy=True)
    try:
        working = _try_lock(reports_dir / PUSH_LOCK, block=True)
    finally:
        # The next pusher may wait now: what it queues after this point is its to do.
        os.close(waiting)
    assert working is not None
    try:
        return _work(reports_dir, node, key, urls, timeout)
    finally:
        os.close(working)


def _work(reports_dir: Path, node: str, key: Path, urls: Sequence[str],
          timeout: float) -> Outcome:
    outcome = Outcome()
    chain = Chain(reports_dir / REPO, node, key)
    for path in queued(reports_dir):
        try:
            report = path.read_bytes()
        except FileNotFoundError:
            continue
        if chain.tip_report() != report:
            try:
                chain.append(report, _message(path))
            except ChainError as exc:
                outcome.errors.append(str(exc))
                break
            outcome.committed += 1
        path.unlink(missing_ok=True)
        path.with_suffix(".msg").unlink(missing_ok=True)
    outcome.tip = chain.tip()
    state = read_pushed(reports_dir)
    accepted = state.get("urls") if isinstance(state.get("urls"), dict) else {}
    assert isinstance(accepted, dict)
    if outcome.tip is not None and urls and accepted.get(urls[0]) != outcome.tip:
        for url in urls:
            done = Git(chain.path).run("push", "--quiet", "--porcelain", "--", url,
                                       f"+{chain.ref}:{chain.ref}", timeout=timeout,
                                       network=True)
            if done.ok:
                accepted[url] = outcome.tip
                outcome.pushed_to = url
                break
            outcome.errors.append(f"{url}: {done.tail()}")
    write_json(reports_dir / PUSHED, {
        "tip": outcome.tip, "urls": accepted,
        "last": {"time": time.time(), "pushed_to": outcome.pushed_to,
                 "errors": outcome.errors},
    })  # fmt: skip
    return outcome


def _message(report_path: Path) -> str:
    """The commit message queued beside the report (`<name>.msg`)."""
    try:
        return report_path.with_suffix(".msg").read_text()
    except FileNotFoundError:
        return "report\n"
