"""An audit that finds exactly the drift the last audit found says it again, without
importing the engine, compiling or planning (`entry.py`).

A full audit that planned only the drifted paths, against the desired state the settled
run kept (run.quiet_cycle), keeps in `STATE/repeat.json`: the quiet record it compared
with (key and stamp), the live entry of each drifted path as it compared them (taken
before the plan read them, so an edit racing the audit is never kept as seen), the
history's newest record, a digest of its report without its time, and the report as it
prints on a pipe. The next plain `audit` printing to a pipe whose quiet comparison finds
the same key and stamp and the very same drifted paths with the very same live entries,
while the last run's report and the history are still that audit's, could only plan and
print the same: it prints the kept text and records the run as that audit recorded its
repeat (last-run.json with its own time, last-success.json, the metrics; no history
commit, as a repeated finding has nothing new to say). Like the quiet answer in sync, it
records no facts: it did not gather them.

Nothing is kept when the node's policy has a change window (the ceiling then depends on
the time), or when the run noted, refused or failed anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler import quiet
from reconciler.atomicfile import read_own, write_atomic
from reconciler.git import read_ref
from reconciler.record.history import BRANCH
from reconciler.statedir import StateDir

FORMAT = 1
_TIMED = ("started", "duration_s", "facts")  # what differs between two runs that say the same


@dataclass(frozen=True)
class Printed:
    """A report as it prints on a pipe: every line but the last, and the last line's words
    before the run's duration (`drift (exit 2): 901 in sync, 100 drift (edited by hand)`)."""

    body: str
    tally: str

    def text(self, duration_s: float) -> str:
        """The whole output of a run that took `duration_s`."""
        return f"{self.body}{timed(self.tally, duration_s)}\n"


def timed(words: str, duration_s: float) -> str:
    """The last line of a run's text (cli/show.py): its tally, then how long it took."""
    return f"{words} in {duration_s:.2f}s"


def keep(state: StateDir, found: quiet.Drifted, printed: Printed) -> None:
    """After a full audit of `found`'s drifted paths was recorded: keep what it found and
    printed. The caller holds the node lock."""
    report = json.loads(read_own(state.last_run))
    record = {"format": FORMAT, "key": found.key, "quiet": found.stamp,
              "history": read_ref(state.history, BRANCH), "live": found.live,
              "report": _digest(report), "body": printed.body, "tally": printed.tally}
    write_atomic(state.repeat, json.dumps(record).encode())


def drop(state: StateDir) -> None:
    """A run that is not such an audit leaves nothing to repeat."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state.repeat)


def again(state: StateDir, found: quiet.Drifted, started: datetime,
          duration_s: float) -> tuple[str, int] | None:
    """When the last audit found `found`'s drift exactly: the run recorded (taking
    `duration_s` from `started`), its output and exit code. None when the audit must be
    planned; OSError when it could not be recorded. The caller holds the node lock."""
    try:
        record = json.loads(read_own(state.repeat))
        if (record["format"], record["key"], record["quiet"], record["live"]) != (
                FORMAT, found.key, found.stamp, found.live) \
                or record["history"] != read_ref(state.history, BRANCH):
            return None
        last = json.loads(read_own(state.last_run))
        if _digest(last) != record["report"]:
            return None
        printed = Printed(record["body"], record["tally"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, LookupError, TypeError):
        drop(state)  # unreadable: the full audit that follows keeps a sound one
        return None
    duration_s = round(duration_s, 4)
    quiet.save_report(state, {**last, "started": started.isoformat(),
                              "duration_s": duration_s, "facts": None})
    return printed.text(duration_s), int(last["exit_code"])


def _digest(report: dict[str, Any]) -> str:
    """What a run report says, without when it ran and what the node's facts were then."""
    said = {name: value for name, value in report.items() if name not in _TIMED}
    return hashlib.sha256(json.dumps(said, sort_keys=True).encode()).hexdigest()
