"""`reconciler restore PATH`: list what the backup store keeps of a node path, or put one
kept version back (`--at TIME`, `--before RUN`) atomically through the system interface.

A secret file's copy is age ciphertext sealed to the node's own key: it is decrypted in
memory and written straight to its path, never as plain text anywhere else.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import handles_errors
from reconciler.errors import Problem, ReconcilerError, UsageError
from reconciler.statedir import AGE_IDENTITY, StateDir

if TYPE_CHECKING:
    from reconciler.system.backups import Kept

_FILE_MODE, _SECRET_MODE = 0o644, 0o600


def register(group: click.Group) -> None:
    group.add_command(restore)


@click.command()
@click.argument("path")
@click.option("--at", "at", default=None, metavar="TIME",
              help="Restore the newest version kept at or before TIME (UTC, "
                   "e.g. '2026-05-04 10:00').")
@click.option("--before", "before", default=None, metavar="RUN",
              help="Restore the version RUN replaced (a run as `reconciler log` or the "
                   "listing names it).")
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Directory the node's paths live under.")
@click.option("--state-dir", default=None,
              help="Reconciler's state (default: var/lib/reconciler under --root).")
@click.option("--identity", default=AGE_IDENTITY, show_default=True,
              help="The node's age identity, to decrypt a kept secret file.")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for a run to finish.")
@handles_errors
def restore(path: str, at: str | None, before: str | None, root: str, state_dir: str | None,
            identity: str, wait: float) -> None:
    """List the versions of PATH the backups keep, or restore one (--at or --before).

    Restoring replaces PATH atomically and keeps the version it replaces, so a restore
    can itself be undone; an audit then reports PATH as edited by hand."""
    from reconciler.system.backups import kept_for

    if at is not None and before is not None:
        raise UsageError.because("give --at TIME or --before RUN, not both")
    root = os.path.abspath(root)
    state = StateDir.of(state_dir) if state_dir else StateDir.under(root)
    kept = kept_for(str(state.backups), path)
    if at is None and before is None:
        if not kept:
            raise UsageError.because(f"no backup of {path} is kept under {state.backups}")
        for item in reversed(kept):
            click.echo(f"{item.time:%Y-%m-%d %H:%M:%S} UTC  run {_run_words(item)}  "
                       f"{'secret (sealed)' if item.secret else 'sha256 ' + (item.sha256 or '')}")
        return
    chosen = _at(kept, path, _moment(at)) if at is not None else \
        _before(kept, path, state, before or "")
    _put_back(chosen, path, root, state, identity, wait)
    click.echo(f"restored {path} as it was at {chosen.time:%Y-%m-%d %H:%M:%S} UTC "
               f"(run {_run_words(chosen)}); the version it replaced is kept too")


def _run_words(item: Kept) -> str:
    return item.run or "unknown"


def _started(run: str | None) -> datetime | None:
    """When a run labelled `run` started (None: a restore, or not a run's start time)."""
    try:
        return datetime.fromisoformat(run) if run else None
    except ValueError:
        return None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace(" UTC", "").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError.because(f"--at {text!r} is not a time (e.g. '2026-05-04 10:00')") \
            from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _at(kept: list[Kept], path: str, moment: datetime) -> Kept:
    earlier = [item for item in kept if item.time <= moment]
    if not earlier:
        raise UsageError.because(f"no backup of {path} was kept at or before "
                                 f"{moment:%Y-%m-%d %H:%M:%S} UTC"
                                 + (f" (the oldest is {kept[0].time:%Y-%m-%d %H:%M:%S} UTC)"
                                    if kept else ""))
    return earlier[-1]


def _before(kept: list[Kept], path: str, state: StateDir, run: str) -> Kept:
    """The version run `run` replaced: `run` is a history commit (as `log` prints it) or
    the run's start time (as the listing prints it)."""
    from reconciler.record.history import RUN_JSON, History
    from reconciler.record.report import RunReport

    started = _started(run)
    try:
        if started is None:
            started = RunReport.model_validate_json(
                History(state.history).read(run, RUN_JSON)).started
    except (ReconcilerError, ValueError, OSError):
        raise UsageError.because(f"no run {run!r} in {state.history} "
                                 "(`reconciler log` lists the runs)") from None
    replaced = [item for item in kept if _started(item.run) == started]
    if not replaced:
        raise UsageError.because(f"run {run} replaced no version of {path} that is still kept")
    return replaced[0]


def _put_back(chosen: Kept, path: str, root: str, state: StateDir, identity: str,
              wait: float) -> None:
    """Write the kept bytes to `path` under the node lock, as a run writes a file."""
    from reconciler.lock import NodeLock
    from reconciler.secrets import age
    from reconciler.system.backups import read_kept
    from reconciler.system.local import LocalSystem

    data = read_kept(str(state.backups), chosen)
    if chosen.secret:
        try:
            data = age.decrypt(data, age.read_identities(identity, private=True))
        except age.AgeError as exc:
            raise UsageError.because(f"cannot decrypt the kept copy of {path}: {exc}") from None
    lock = NodeLock(state.lock)
    try:
        lock.acquire(wait=wait)
    except OSError as exc:
        raise UsageError([Problem(exc.strerror or str(exc), str(state.lock))]) from None
    try:
        system = LocalSystem(root, host_commands=False, backup_dir=str(state.backups),
                             backup_run=f"restore {datetime.now(UTC).isoformat()}",
                             backup_seal=age.sealer(identity))
        live = system.lstat(path)
        mode = live.mode if live is not None and live.kind == "file" else \
            _SECRET_MODE if chosen.secret else _FILE_MODE
        system.write_atomic(path, data, mode, None, None, secret=chosen.secret)
    except OSError as exc:
        raise UsageError([Problem(f"cannot restore it: {exc.strerror or exc}", path)]) from None
    finally:
        lock.release()
