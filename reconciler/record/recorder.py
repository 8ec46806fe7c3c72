"""The *record* stage of a run from the config remote: a history commit when the run has
something new to say, the Prometheus textfile, `last-run.json` and `last-success.json`.

A part that cannot be written does not hide the others, and does not go unnoticed: the
run's report gains the problem and counts as failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from reconciler.atomicfile import set_aside
from reconciler.errors import ReconcilerError
from reconciler.record import entry, lastrun, metrics
from reconciler.record.history import RUN_JSON, History
from reconciler.record.recovery import moved_note
from reconciler.record.report import EXIT_FAILED, RunReport
from reconciler.render.rendered import RenderedFile
from reconciler.secrets.digest import ContentDigest
from reconciler.source.state import Refusal, SourceState
from reconciler.statedir import StateDir
from reconciler.system.interface import UnsafePath
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import ReadOnlySystem

NOTHING_TO_SAY = ("in-sync",)


class Recorder:
    """Records the runs of one node into its state directory."""

    def __init__(
        self, state: StateDir, node: str, root: str,
        metrics_file: Path | None = None, partial: bool = False,
    ) -> None:  # fmt: skip
        self.state = state
        self.node = node
        self.root = root
        self.metrics_file = metrics_file or state.metrics
        self.partial = partial  # the run checked only the actions a drift-watch event touched

    def record(self, report: RunReport, managed: Iterable[RenderedFile] | None,
               as_rendered: frozenset[str] = frozenset()) -> RunReport:
        """Record `report`; `managed` are the files the run's desired state declares (None:
        the run never got that far), of which those `as_rendered` are known to hold just
        their rendered content (not read again). Returns the report, failed if recording
        failed."""
        try:
            self._history(report, managed, as_rendered)
        except (ReconcilerError, OSError, ValueError) as exc:
            report = self._history_afresh(report, managed, as_rendered, exc)
        try:
            metrics.write(self.metrics_file, report, partial=self.partial)
        except OSError as exc:
            report = failed_with(report, f"{self.metrics_file}: could not write the metrics: "
                                     f"{_reason(exc)}")
        try:
            lastrun.save(self.state, report)
        except OSError as exc:
            report = failed_with(report, f"{self.state.last_run}: could not record the run: "
                                     f"{_reason(exc)}")
        return report

    def _history(self, report: RunReport, managed: Iterable[RenderedFile] | None,
                 as_rendered: frozenset[str]) -> None:
        """Add a history commit when the run has something new to say.

        New is: the first run, a tip refused by this very run, or a result other than
        in-sync that differs from the previous record (or applied something). A tip that
        stays refused run after run is recorded once.
        """
        history = History(self.state.history, self.node)
        refusal = self._refusal_seen(report)
        refused_now = refusal is not None and refusal.at >= report.started
        if history.head() is not None and not refused_now:
            if report.result in NOTHING_TO_SAY or (
                report.result == "refused" and refusal is not None
            ):
                return
            # A run that applied something is new whatever the last record says: that
            # record (read by a git process) is looked at only when nothing was applied.
            if not report.counts.applied and entry.outstanding_digest(
                    RunReport.model_validate_json(history.read("HEAD", RUN_JSON))
            ) == entry.outstanding_digest(report):
                return
        refused_tip = refusal if refused_now else None
        data = report.model_dump_json(indent=2).encode() + b"\n"
        # Without a desired state the run looked at no file: the last snapshot still holds.
        history.record(self._snapshot(managed, as_rendered), data,
                       entry.summary(report, refused_tip), entry.trailers(report, refused_tip),
                       deleted=None if managed is not None else [])

    def _history_afresh(
        self, report: RunReport, managed: Iterable[RenderedFile] | None,
        as_rendered: frozenset[str], error: Exception
    ) -> RunReport:
        """After a failed record: a damaged history repository is set aside and a new one
        starts with this run (said in the notes); anything else fails the run."""
        path = self.state.history
        failed = failed_with(report, f"{path}: could not record the run: {_reason(error)}")
        try:
            if path.is_symlink() or not History(path, self.node).damaged():
                return failed
            moved = set_aside(path)
        except (ReconcilerError, OSError):
            return failed
        report = report.model_copy(update={"notes": [
            *report.notes, moved_note(path, "the history repository", moved)]})
        try:
            self._history(report, managed, as_rendered)
        except (ReconcilerError, OSError, ValueError) as exc:
            return failed_with(report, f"{path}: could not record the run: {_reason(exc)}")
        return report

    def _refusal_seen(self, report: RunReport) -> Refusal | None:
        """The refusal of the tip this run saw, when the run did not use that tip."""
        try:
            refused = SourceState.load(self.state.source_state).refused
        except ReconcilerError:
            return None
        source = report.source
        if refused is None or source is None or source.tip != refused.commit:
            return None
        used = report.config_commit == refused.commit and report.result != "refused"
        return None if used else refused

    def _snapshot(self, managed: Iterable[RenderedFile] | None,
                  as_rendered: frozenset[str]) -> dict[str, bytes]:
        """The managed files as they now are on the node (those `as_rendered`: their
        rendered content); a secret file as its keyed hash only (a plain sha256 would let
        a weak password be guessed from the history)."""
        if managed is None:
            return {}
        digest = ContentDigest.of_state_dir(self.state)
        system = ReadOnlySystem(LocalSystem(self.root, host_commands=False))
        files: dict[str, bytes] = {}
        for item in managed:
            if item.path in as_rendered and item.content is not None and not item.action.secret:
                files[item.path] = item.content
                continue
            try:
                live = system.lstat(item.path)
                if live is None or live.kind != "file":
                    continue
                content = system.read(item.path)
            except (OSError, ValueError, UnsafePath) as exc:  # a symlinked parent, say
                files[item.path] = f"unreadable: {exc}\n".encode()
                continue
            if item.action.secret:
                content = f"secret {digest(content, True)}\n".encode()
            files[item.path] = content
        return files


def _reason(error: Exception) -> str:
    if isinstance(error, ReconcilerError):
        return "; ".join(p.message for p in error.problems)
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return str(error)


def failed_with(report: RunReport, problem: str) -> RunReport:
    """`report`, failed because of `problem`."""
    return report.model_copy(update={"problems": [*report.problems, problem],
                                     "result": "failed",
                                     "exit_code": report.exit_code | EXIT_FAILED})
