"""The background pusher a run starts: `python -m reconciler.fleet.pusher ...`.

It runs detached from the run (its own session, no terminal), drains the outbox
(push.py) and exits. It imports only what publishing needs, so it starts quickly, and
an alarm ends it whatever happens after `deadline` seconds.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from pathlib import Path

from reconciler.fleet.push import drain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reconciler-pusher")
    parser.add_argument("--reports-dir", required=True, type=Path)
    parser.add_argument("--node", required=True)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--timeout", required=True, type=float)
    parser.add_argument("--deadline", required=True, type=int)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    signal.alarm(args.deadline)  # the default action of SIGALRM ends the process
    outcome = drain(args.reports_dir, args.node, args.key, args.urls, args.timeout)
    return 0 if outcome.ok or outcome.busy else 1


if __name__ == "__main__":
    code = main()
    # The process ends: the interpreter's last collections would only go through what
    # the imports built, all alive to the end. Frozen, it is skipped.
    gc.freeze()
    sys.exit(code)
