"""Every exit status the `reconciler` command can end with, decided in this one place.

A run ends with its report's exit code, a bitmask (`RunReport.exit_code`: refused,
changes, failed, held), or 128 + the signal that interrupted it, as a shell reports
it. An error that stops a command before any change ends with the code its reaction
class maps to here (the bits themselves are in `reconciler.exitbits`). `status` says 3
for a node that never ran, as LSB status says "not running". (`plan` and `check` speak
their own protocols: see their help.)
"""

from __future__ import annotations

from reconciler.errors import Failed, ReconcilerError, Refused, RetryLater, UsageError
from reconciler.exitbits import EXIT_CHANGES as EXIT_CHANGES
from reconciler.exitbits import EXIT_FAILED as EXIT_FAILED
from reconciler.exitbits import EXIT_HELD as EXIT_HELD
from reconciler.exitbits import EXIT_IN_SYNC as EXIT_IN_SYNC
from reconciler.exitbits import EXIT_REFUSED as EXIT_REFUSED
from reconciler.exitbits import EXIT_SIGNAL

# Nothing was changed in every case: the command stopped before it could change anything.
FOR_ERROR: dict[type[ReconcilerError], int] = {
    UsageError: EXIT_REFUSED,  # the operator asked for something impossible
    Refused: EXIT_REFUSED,  # bad or unverified input
    RetryLater: EXIT_REFUSED,  # the node lock is held, the remote is down
    Failed: EXIT_REFUSED,  # a state file could not be read
}
EXIT_NEVER_RAN = 3


def for_error(error: ReconcilerError) -> int:
    """The exit status of a command stopped by `error`: the nearest class in the map."""
    for cls in type(error).__mro__:
        if cls in FOR_ERROR:
            return FOR_ERROR[cls]
    return EXIT_REFUSED


def interrupted(signum: int) -> int:
    """A run stopped by a signal exits as a shell reports it: 128 + the signal."""
    return EXIT_SIGNAL + signum


HELP = f"""
\b
Exit codes (a bitmask):
  {EXIT_IN_SYNC}  in sync
  {EXIT_REFUSED}  refused before any change (bad input, lock held, unknown node)
  {EXIT_CHANGES}  changes made (apply) or drift found (audit)
  {EXIT_FAILED}  some action failed
  {EXIT_HELD}  changes held above the severity ceiling
  143, 130  stopped by SIGTERM, SIGINT: the current file finished, the run
            was recorded as "interrupted" with this same code, the lock released
"""
