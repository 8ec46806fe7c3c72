"""Helpers shared by the filesystem actions: ownership, diffs, drift against last-applied."""

from __future__ import annotations

import difflib
import hashlib
import posixpath

from reconciler.plan.build import Context, Drift
from reconciler.record.applied import Applied
from reconciler.system.interface import Stat

MAX_DIFF_LINES = 400


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def unified_diff(path: str, old: bytes, new: bytes) -> str:
    """A unified diff of two contents, or a one-line note for binary data; bounded."""
    try:
        old_text = old.decode("utf-8")
        new_text = new.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary content changed ({len(old)} → {len(new)} bytes)\n"
    lines = list(difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile=f"live:{path}", tofile=f"desired:{path}"))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... diff cut at {MAX_DIFF_LINES} lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def drift(
    record: Applied | None, live_matches_record: bool, desired_matches_record: bool
) -> Drift:
    """Pending (config moved), edited by hand (live moved away from what we wrote), or both."""
    if record is None or live_matches_record:
        return Drift.PENDING
    return Drift.EDITED if desired_matches_record else Drift.BOTH


def missing_parents(ctx: Context, path: str) -> list[str]:
    """Parent directories of `path` that do not exist yet, outermost first."""
    missing: list[str] = []
    parent = posixpath.dirname(path)
    while parent not in ("/", ""):
        if ctx.system.lstat(parent) is not None:
            break
        missing.append(parent)
        parent = posixpath.dirname(parent)
    return list(reversed(missing))
