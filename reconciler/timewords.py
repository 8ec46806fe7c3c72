"""Times for people, written one way everywhere: `2026-12-02 14:11:07 UTC` and `3m 2s`."""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(moment: datetime) -> str:
    """A moment in UTC to the second."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def ago(seconds: float | None) -> str:
    """`3h 2m`, `45s`, `2d 4h`: how long ago, for people."""
    if seconds is None:
        return "never"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def stamp_ago(moment: datetime, now: datetime | None = None) -> str:
    """`2026-12-02 14:11:07 UTC (3m 2s ago)`."""
    return f"{stamp(moment)} ({ago(((now or datetime.now(UTC)) - moment).total_seconds())} ago)"
