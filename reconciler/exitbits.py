"""The bits of a run's exit status, a module of its own so the command line can name
them (help text, error exits) without loading the run report's pydantic models."""

from __future__ import annotations

EXIT_IN_SYNC = 0
EXIT_REFUSED = 1
EXIT_CHANGES = 2
EXIT_FAILED = 4
EXIT_HELD = 8
EXIT_SIGNAL = 128  # an interrupted run exits 128 + the signal, as a shell reports it
