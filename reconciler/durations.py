"""Durations as people write them in config and on the command line: `90`, `90s`,
`15m`, `2h`, `1d`."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_RE = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
EXAMPLES = "e.g. 90s, 15m, 2h, 1d"


def parse(text: str) -> timedelta | None:
    """`text` as a timedelta, or None when it is not a duration."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        return None
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
