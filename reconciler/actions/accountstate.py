"""Three states for accounts: the last-applied record of a user or group holds a hash of
the fields its action manages, so a shell changed with chsh reads "edited by hand"."""

from __future__ import annotations

import json
from typing import Literal

from reconciler.actions.common import drift
from reconciler.plan.change import Drift
from reconciler.plan.probe import Context
from reconciler.record.applied import Applied


def fields_digest(ctx: Context, fields: dict[str, str]) -> str:
    """The hash of some managed fields (sorted, so equal fields hash equally)."""
    return ctx.digest(json.dumps(fields, sort_keys=True).encode(), False)


def account_drift(ctx: Context, key: str, live: dict[str, str], desired: dict[str, str]) -> \
        tuple[Drift, str | None]:
    """Pending or edited by hand, and the commit that last set the fields."""
    record = ctx.applied.get(key)
    if record is None:
        return Drift.PENDING, None
    return drift(record, fields_digest(ctx, live) == record.sha256,
                 fields_digest(ctx, desired) == record.sha256), record.commit


def kept(ctx: Context, key: str, kind: Literal["user", "group"], digest: str) -> Applied:
    """The record of an account found as desired (keeping the commit that set it)."""
    record = ctx.applied.get(key)
    commit = record.commit if record is not None and record.sha256 == digest else ctx.commit
    return Applied(type=kind, action=key, sha256=digest, commit=commit)
