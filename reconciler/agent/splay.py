"""When the agent runs its cycles: every `interval` seconds, at a per-node offset.

The offset comes from a hash of the node name, so it is stable across restarts, and
it is anchored to the wall clock: a node polls whenever the time of day is its offset
modulo the interval, whenever its agent started. A fleet therefore spreads its fetches
evenly over `[0, splay)` of every interval (by default the splay is the whole interval)
even right after a fleet-wide restart, instead of staying bunched where the restart put
it. A little fresh randomness on each cycle keeps nodes whose offsets happen to
coincide from staying in lockstep. Waiting is on the monotonic clock: a wall-clock
jump neither freezes nor floods the loop (the anchor is taken when a schedule starts).
"""

from __future__ import annotations

import hashlib
import math
import random

JITTER_FRACTION = 0.02  # of the interval
JITTER_CAP = 5.0  # seconds


def splay_offset(node: str, splay: float) -> float:
    """This node's place in `[0, splay)`: the same on every start, different across nodes."""
    if splay <= 0:
        return 0.0
    digest = hashlib.sha256(node.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * splay


def wall_slot(moment: float, period: float, offset: float) -> int:
    """Which period of the wall clock (Unix time) `moment` falls in, periods starting
    `offset` seconds after each multiple of `period`: nodes with different offsets
    start their periods at different times, whenever they were started."""
    return math.floor((moment - offset) / period)


def max_jitter(interval: float, splay: float) -> float:
    """The most random delay added to one cycle: 2% of the interval, at most 5 s, and
    never more than the splay (a splay of 0 asks for exact timing)."""
    return max(0.0, min(JITTER_CAP, interval * JITTER_FRACTION, splay))


class Schedule:
    """The due times of full cycles on the monotonic clock.

    `start` is the monotonic time at which the wall clock read `wall`. Slots fall
    where the wall clock reads `offset` modulo `interval`, the first one in
    `[start, start + interval)`, plus a fresh jitter each time. Without `wall` (a
    splay of 0: exact timing, no spreading asked for) they fall at `start + offset`
    and every interval from there. A cycle that overran,
    or a process that was suspended, skips the slots it missed rather than running
    them back to back.
    """

    def __init__(
        self, interval: float, offset: float, jitter: float, start: float,
        wall: float | None, rng: random.Random | None = None,
    ) -> None:  # fmt: skip
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.offset = offset
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._slot = start + (offset if wall is None else (offset - wall) % interval)
        self.due = self._slot + self._draw()

    def _draw(self) -> float:
        return self._rng.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0

    def advance(self, now: float) -> float:
        """After a cycle (finished at `now`): the next slot still in the future."""
        self._slot += self.interval
        if self._slot <= now:
            self._slot += (math.floor((now - self._slot) / self.interval) + 1) * self.interval
        self.due = self._slot + self._draw()
        return self.due
