"""Change windows: `window="Tue,Thu 02:00-04:00 Europe/Paris"` in a policy says when
changes up to `window-severity` may interrupt a node. Pure functions of a time.

Days are `Mon`…`Sun`, comma-separated, and ranges (`Mon-Fri`); the times are the
window's wall-clock start and end in its time zone (an IANA name; `UTC` when left out),
the end past midnight when it is not after the start (the window belongs to the day it
opens). Comparisons are made in UTC, so a daylight-saving change moves the window with
the zone's wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.compile.nodeconfig import Policy, Severity

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FORM = re.compile(r"^(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})"
                   r"(?:\s+(?P<zone>\S+))?$")


@dataclass(frozen=True)
class Window:
    """When interrupting changes are allowed: some weekdays, a wall-clock span, a zone."""

    days: frozenset[int]  # Monday is 0
    start: time
    end: time
    zone: str

    def _spans(self, now: datetime, back: int, ahead: int) -> list[tuple[datetime, datetime]]:
        """(opening, closing) in UTC of every window opening on the days around `now`."""
        tz = ZoneInfo(self.zone)
        today = now.astimezone(tz).date()
        spans = []
        for offset in range(-back, ahead + 1):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                spans.append(self._span(day, tz))
        return spans

    def _span(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.start, tz)
        closes_on = day + timedelta(days=1) if self.end <= self.start else day
        closes = datetime.combine(closes_on, self.end, tz)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def contains(self, now: datetime) -> bool:
        return any(opens <= now < closes for opens, closes in self._spans(now, 1, 0))

    def next_opening(self, now: datetime) -> str:
        """When the window opens next after `now`, as people read it: `Tue 02:00 UTC`."""
        opens = min(o for o, _ in self._spans(now, 0, 7) if o > now)
        return f"{opens.astimezone(ZoneInfo(self.zone)):%a %H:%M} {self.zone}"


def parse(text: str) -> Window:
    """`text` as a window; ValueError saying what is wrong."""
    match = _FORM.match(text.strip())
    if match is None:
        raise ValueError(f"window {text!r} is not DAYS HH:MM-HH:MM [ZONE] "
                         "(e.g. \"Tue,Thu 02:00-04:00 UTC\")")
    zone = match.group("zone") or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"window {text!r}: unknown time zone {zone!r}") from None
    try:
        start, end = (time.fromisoformat(match.group(k)) for k in ("start", "end"))
    except ValueError:
        raise ValueError(f"window {text!r}: a time is not HH:MM between 00:00 and 23:59") \
            from None
    if start == end:
        raise ValueError(f"window {text!r} opens and closes at the same time")
    return Window(_days(text, match.group("days")), start, end, zone)


def _days(text: str, spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"window {text!r}: {part!r} is not a day or a range of days "
                             "(Mon, Tue, Wed, Thu, Fri, Sat, Sun; e.g. Mon-Fri)")
        begin, finish = DAYS.index(first), DAYS.index(last or first)
        span = range(begin, finish + 1) if begin <= finish else [*range(begin, 7),
                                                                  *range(0, finish + 1)]
        days.update(span)
    return frozenset(days)


@dataclass(frozen=True)
class Ceiling:
    """A run's severity ceiling, and outside a change window what waits for it: changes
    up to `waits_up_to` are held until `opens` (`Tue 02:00 UTC`)."""

    severity: Severity
    waits_up_to: Severity | None = None
    opens: str = ""


def ceiling(policy: Policy, override: Severity | None, now: datetime) -> Ceiling:
    """The ceiling at `now`: an explicit override; else inside the policy's window its
    `window-severity`, outside it `max-severity` and the window's next opening."""
    if override is not None:
        return Ceiling(override)
    if policy.window is None:
        return Ceiling(policy.max_severity)
    window = parse(policy.window)
    during = max(policy.window_severity, policy.max_severity)
    if window.contains(now):
        return Ceiling(during)
    if during == policy.max_severity:
        return Ceiling(policy.max_severity)
    return Ceiling(policy.max_severity, during, window.next_opening(now))
