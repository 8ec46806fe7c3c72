"""Helpers shared by the filesystem actions: ownership, diffs, drift against last-applied."""

from __future__ import annotations

import posixpath

from reconciler.diff import unified_diff
from reconciler.plan.change import Drift
from reconciler.plan.probe import Context
from reconciler.record.applied import Applied
from reconciler.system.interface import Stat, System

MAX_DIFF_LINES = 400


def owner_ids(ctx: Context, owner: str | None, group: str | None) -> tuple[int | None, int | None]:
    """Numeric ids to enforce, or None where unmanaged (not given, or not running as root)."""
    if not ctx.system.can_chown:
        return None, None
    uid = ctx.system.user_id(owner) if owner is not None else None
    gid = ctx.system.group_id(group) if group is not None else None
    return uid, gid


def attr_differences(
    live: Stat, mode: int | None, uid: int | None, gid: int | None
) -> list[str]:
    """Human descriptions of mode/owner differences, empty when they match."""
    found = []
    if mode is not None and live.mode != mode:
        found.append(f"mode {live.mode:04o} → {mode:04o}")
    if uid is not None and live.uid != uid:
        found.append(f"owner {live.uid} → {uid}")
    if gid is not None and live.gid != gid:
        found.append(f"group {live.gid} → {gid}")
    return found


def live_diff(path: str, old: bytes, new: bytes) -> str:
    """The diff a node report shows, live → desired, or a one-line note for binary data."""
    diff = unified_diff(old, new, f"live:{path}", f"desired:{path}", max_lines=MAX_DIFF_LINES)
    return diff if diff is not None else f"binary content changed ({len(old)} → {len(new)} bytes)\n"


def drift(
    record: Applied | None, live_matches_record: bool, desired_matches_record: bool
) -> Drift:
    """Pending (config moved), edited by hand (live moved away from what we wrote), or both."""
    if record is None or live_matches_record:
        return Drift.PENDING
    return Drift.EDITED if desired_matches_record else Drift.BOTH


def missing_parents(system: System, path: str) -> list[str]:
    """Parent directories of `path` that do not exist yet, outermost first."""
    missing: list[str] = []
    parent = posixpath.dirname(path)
    while parent not in ("/", ""):
        if system.lstat(parent) is not None:
            break
        missing.append(parent)
        parent = posixpath.dirname(parent)
    return list(reversed(missing))


def set_attrs(system: System, path: str, mode: int | None, uid: int | None, gid: int | None) -> \
        None:
    """Set whichever of mode and owner are managed (None leaves it as it is)."""
    if mode is not None:
        system.chmod(path, mode)
    if uid is not None or gid is not None:
        system.chown(path, uid, gid)
