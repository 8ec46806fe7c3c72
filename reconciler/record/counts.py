"""A run's result and its counts by state: shared by the run report (report.py) and the
fleet's digest of it (fleet/model.py), which the reports server's hook reads without
building the run report's models."""

# No `from __future__ import annotations`: pydantic would evaluate each field's annotation
# from its string, compiling it first, in every process that builds these models.

from typing import Literal

from pydantic import BaseModel, ConfigDict

Result = Literal["in-sync", "changed", "drift", "pending", "held", "failed", "refused",
                 "interrupted", "reverted"]


class Counts(BaseModel):
    """Paths and changes by state. `drift`, `pending`, `held` and `failed` are what the run
    left standing, each change in exactly one of them: a hand edit still there is drift
    (whether audit found it or policy held it), not pending or held. `edited_by_hand`
    counts every hand edit found, the ones this run overwrote too."""

    model_config = ConfigDict(extra="forbid")

    in_sync: int = 0
    pending: int = 0
    drift: int = 0
    edited_by_hand: int = 0
    applied: int = 0
    held: int = 0
    failed: int = 0
    skipped: int = 0
    orphans: int = 0
