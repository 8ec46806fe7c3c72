"""The node's last run, as files in its state directory: `last-run.json` (the whole report)
and `last-success.json` (when a run last did not fail, and at which commit).

`status` and `check` read them back through the same models the run wrote them with.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.atomicfile import read_own, write_atomic_all
from reconciler.errors import Failed, Problem
from reconciler.record.report import RunReport
from reconciler.statedir import StateDir

UNSUCCESSFUL = frozenset({"refused", "failed", "interrupted", "reverted"})


class LastRunUnreadable(Failed):
    """last-run.json exists but cannot be read or parsed."""


class LastSuccess(BaseModel):
    """When the last run that did not fail started, and the config commit it enforced."""

    model_config = ConfigDict(frozen=True)

    time: datetime
    commit: str | None


def save(state: StateDir, report: RunReport) -> None:
    """Write last-run.json, and last-success.json when the run did not fail."""
    files = [(state.last_run, report.model_dump_json(indent=2).encode() + b"\n", 0o600)]
    if report.result not in UNSUCCESSFUL:
        success = LastSuccess(time=report.started, commit=report.config_commit)
        files.append((state.last_success, success.model_dump_json().encode(), 0o600))
    write_atomic_all(files)


def last_run(state: StateDir) -> RunReport | None:
    """The last run's report; None before the first run; `LastRunUnreadable` otherwise."""
    try:
        raw = read_own(state.last_run)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LastRunUnreadable([Problem(
            f"cannot read {state.last_run}: {exc.strerror or exc}")]) from None
    try:
        return RunReport.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise LastRunUnreadable([Problem(f"unreadable {state.last_run}: {first}")]) from None


def last_success(state: StateDir) -> LastSuccess | None:
    """When a run last did not fail; None when none did (or the file cannot be read)."""
    try:
        return LastSuccess.model_validate_json(read_own(state.last_success))
    except (OSError, ValidationError, ValueError):
        return None
