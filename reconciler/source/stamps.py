"""When the node's cache was last checked (`git fsck`) and last fetched with git: Unix
times stamped in small files inside the cache, and whether a period has passed since,
in periods anchored to the wall clock at each node's own offset (so a fleet spreads
its checks over the period rather than all at once)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from reconciler.agent.splay import splay_offset, wall_slot

CHECKED = "reconciler-checked"  # when the cache's last fsck passed
CHECK_PERIOD = 86400.0  # seconds between two checks of the cache
FETCHED = "reconciler-fetched"  # when git last answered for the cache (with a tip file)
GIT_PERIOD = 3600.0  # seconds a tip file may stand in for git before git is asked again


def due(cache: str | os.PathLike[str], stamp: str, node: str, period: float,
        now: float | None = None) -> bool:
    """Whether the time stamped in `cache`/`stamp` falls in an earlier period than `now`
    (or there is no stamp)."""
    try:
        then = float((Path(cache) / stamp).read_text())
    except (OSError, ValueError):
        return True
    offset = splay_offset(node, period)
    moment = time.time() if now is None else now
    return wall_slot(then, period, offset) != wall_slot(moment, period, offset)


def note(cache: str | os.PathLike[str], stamp: str, now: float | None = None) -> None:
    """Stamp `cache`/`stamp` with `now`. Only says when something ran: a full disk that
    cannot take it costs that thing again, nothing more."""
    with contextlib.suppress(OSError):
        (Path(cache) / stamp).write_text(f"{time.time() if now is None else now:.0f}\n")
