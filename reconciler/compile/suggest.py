""""Did you mean …?": the nearest valid name to a mistyped one, for error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The valid name closest to `word`, or None when none is close enough to be a typo."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` to append to a message, or nothing."""
    found = nearest(word, choices)
    return f"; did you mean {found!r}?" if found is not None else ""
