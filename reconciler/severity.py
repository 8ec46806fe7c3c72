"""How much an action can interrupt the service when it changes: a module of its own so
what only names severities (the metrics of a quiet run) loads no pydantic model."""

from __future__ import annotations

from enum import IntEnum


class Severity(IntEnum):
    """How much an action can interrupt the service when it changes."""

    NONE = 0
    RELOAD = 1
    RESTART = 2
    REBOOT = 3

    @classmethod
    def parse(cls, word: str) -> Severity:
        try:
            return cls[word.upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {word!r} (expected none, reload, restart or reboot)"
            ) from None

    def __str__(self) -> str:
        return self.name.lower()
