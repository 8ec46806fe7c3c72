"""`report.json`: what one node publishes about one run, for the fleet to read.

A published report is a digest of the run's `RunReport`: enough for a person reading
the fleet to see what the node runs, what it did, what it holds back and why, without
ever carrying a secret (the run report is redacted at construction, and this digest
only copies from it). Sizes are bounded so a node with ten thousand drifting files
still publishes a few hundred kilobytes at most.

Readers ignore fields they do not know (a newer node may add some); `schema_version`
changes only on a breaking change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from reconciler.fleet.chain import MAX_REPORT_BYTES, REF_PREFIX, REPORT_FILE
from reconciler.record.counts import Counts, Result

__all__ = ["MAX_REPORT_BYTES", "REF_PREFIX", "REPORT_FILE"]

SCHEMA_VERSION = 1

# Bounds on what one report carries (the server refuses anything over MAX_REPORT_BYTES).
MAX_ITEMS = 200
MAX_DIFF_BYTES = 16 * 1024
MAX_DIFFS_BYTES = 128 * 1024
MAX_PROBLEMS = 20
MAX_TEXT = 2000

ItemStatus = Literal["applied", "pending", "held", "failed", "skipped"]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReportCounts(Counts):
    """The run's counts by state (see `RunReport.counts`)."""

    model_config = ConfigDict(extra="ignore")


class ConfigRef(Model):
    """A config commit: its id, subject and commit time (None when unknown)."""

    commit: str | None = None
    subject: str | None = None
    time: datetime | None = None


class SourceInfo(Model):
    """Where the config came from and whether the node is behind."""

    branch: str | None = None
    tip: ConfigRef | None = None  # the newest commit the node saw on its branch
    remote: str | None = None  # the URL that served the fetch, password hidden
    mirror: bool = False  # served by a mirror, not the configured remote
    signed_by: str | None = None
    stale: str | None = None  # why the node enforces an older commit than the tip
    pinned: bool = False  # an operator's rollback pin
    refused: ConfigRef | None = None  # the tip this node refused, with the reason
    refused_reason: str | None = None
    rollout: str | None = None  # why the node waits for earlier waves of a rollout


class Item(Model):
    """One change the run found, and what became of it."""

    action: str
    status: ItemStatus
    severity: str
    summary: str  # what it does (or would do)
    path: str | None = None
    drift: Literal["pending", "edited-by-hand", "both"] | None = None
    reason: str | None = None  # why held, skipped or failed


class Diff(Model):
    """A unified diff of a non-secret file, cut at MAX_DIFF_BYTES."""

    action: str
    path: str | None = None
    status: ItemStatus
    diff: str
    truncated: bool = False


class FleetReport(Model):
    """The content of `report.json` in a node's report commit."""

    schema_version: int = SCHEMA_VERSION
    node: str
    time: datetime  # when the run started
    duration_s: float
    mode: Literal["audit", "change"]
    result: Result
    exit_code: int
    ceiling: str
    partial: bool = False  # a drift-watch run that checked only the touched actions
    heartbeat: bool = False  # published on schedule: nothing new since the previous report
    reconciler_version: str
    config: ConfigRef
    config_since: datetime | None = None  # when this node first ran config.commit and it worked
    source: SourceInfo
    counts: ReportCounts
    items: list[Item] = []
    items_omitted: int = 0
    orphans: list[Item] = []
    diffs: list[Diff] = []
    diffs_omitted: int = 0
    problems: list[str] = []
