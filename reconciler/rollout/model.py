"""The rollout fleet.xml declares, as compiled: its waves (each with its member nodes,
resolved once per revision), the soak time and how many failures a wave tolerates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from reconciler.compile.nodeconfig import Origin

REST = "(rest)"  # the implicit last wave: nodes no declared wave selects


@dataclass(frozen=True)
class Wave:
    """One wave: its name, where it is declared, and its member nodes (sorted)."""

    name: str
    origin: Origin | None
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Rollout:
    """`<rollout soak= max-failures=>`: waves in order; a node moves to a new commit once
    every earlier wave has it, with fewer than `max_failures` + 1 failures, and `soak`
    has passed since the last of their successful reports."""

    soak: timedelta
    max_failures: int
    waves: tuple[Wave, ...]
    origin: Origin
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for position, wave in enumerate(self.waves):
            for node in wave.nodes:
                self._index[node] = position

    def wave_of(self, node: str) -> int | None:
        """The position of `node`'s wave (None: the node is not in the fleet)."""
        return self._index.get(node)
