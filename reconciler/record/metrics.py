"""Prometheus textfile-collector metrics of the last run, written atomically.

node_exporter's textfile collector reads `*.prom` files from a directory; the file is
replaced with a rename, so a scrape never sees half of it. A drift-watch audit checks
only the actions an event touched: its counts cover those actions, and
`reconciler_last_run_partial` is 1 so dashboards can tell.

The text is made from a report's JSON form (what last-run.json holds), so the quiet cycle
writes the same metrics without loading the report's pydantic models.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.atomicfile import write_atomic
from reconciler.severity import Severity

if TYPE_CHECKING:
    from reconciler.record.report import Result, RunReport

RESULTS: tuple[Result, ...] = (
    "in-sync", "changed", "drift", "pending", "held", "failed", "refused", "interrupted",
    "reverted",
)  # fmt: skip


def _label(value: str) -> str:
    """A label value in the exposition format: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(report: RunReport, partial: bool = False) -> str:
    """The metrics text for one run report."""
    return text(report.model_dump(mode="json"), partial)


def text(report: Mapping[str, Any], partial: bool = False) -> str:
    """The metrics text for one run report in its JSON form."""
    held: dict[str, int] = {str(s): 0 for s in Severity}
    changes = [c for action in report["actions"] for c in action["changes"]]
    for change in [*changes, *report["orphans"]]:
        if change["status"] == "held":
            held[change["severity"]] = held.get(change["severity"], 0) + 1
    source = report["source"] or {}
    stale = 1 if source.get("stale") else 0
    failover = source.get("failover") is not None
    served = source.get("remote") or ""
    commit = report["config_commit"] or ""
    started = datetime.fromisoformat(report["started"]).timestamp()
    duration, result, exit_code = report["duration_s"], report["result"], report["exit_code"]
    node, mode = _label(report["node"]), report["mode"]
    lines = [
        *_family("reconciler_last_run_timestamp_seconds", "gauge",
                 "Unix time the last run started.",
                 [f"reconciler_last_run_timestamp_seconds {started:.3f}"]),
        *_family("reconciler_last_run_duration_seconds", "gauge",
                 "How long the last run took.",
                 [f"reconciler_last_run_duration_seconds {duration}"]),
        *_family("reconciler_last_run_result", "gauge",
                 "1 for the result of the last run, 0 for the other results.",
                 [f'reconciler_last_run_result{{result="{r}"}} {int(r == result)}'
                  for r in RESULTS]),
        *_family("reconciler_last_run_exit_code", "gauge",
                 "Exit code of the last run (bits: 1 refused, 2 changes, 4 failed, 8 held).",
                 [f"reconciler_last_run_exit_code {exit_code}"]),
        *_family("reconciler_last_run_partial", "gauge",
                 "1 when the last run checked only the actions a drift-watch event touched.",
                 [f"reconciler_last_run_partial {int(partial)}"]),
        *_family("reconciler_last_run_count", "gauge",
                 "Paths and changes of the last run, by state.",
                 [f'reconciler_last_run_count{{state="{name}"}} {count}'
                  for name, count in report["counts"].items()]),
        *_family("reconciler_last_run_held", "gauge",
                 "Changes held above the severity ceiling, by severity.",
                 [f'reconciler_last_run_held{{severity="{_label(s)}"}} {n}'
                  for s, n in held.items()]),
        *_family("reconciler_source_stale", "gauge",
                 "1 when the run used an older commit than the branch tip (or a pin).",
                 [f"reconciler_source_stale {stale}"]),
        *_family("reconciler_source_failover", "gauge",
                 "1 when a mirror served the last run because the remotes before it failed.",
                 [f'reconciler_source_failover{{remote="{_label(served)}"}} {int(failover)}']),
        *_family("reconciler_config_info", "gauge",
                 "The config commit the last run enforced, as a label.",
                 [f'reconciler_config_info{{commit="{_label(commit)}",node="{node}"'
                  f',mode="{mode}"}} 1']),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def write(path: str | os.PathLike[str], report: RunReport | Mapping[str, Any],
          partial: bool = False) -> None:
    """Atomically replace `path` with the metrics of `report` (readable by the collector),
    a run report or its JSON form."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    found = text(report, partial) if isinstance(report, Mapping) else render(report, partial)
    write_atomic(path, found.encode(), mode=0o644)
