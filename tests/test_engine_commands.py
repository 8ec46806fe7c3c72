"""Command actions with real processes: a timeout kills the command's whole process group.

Guards, refresh-only commands and what a failure does to the rest are scenarios
(tests/scenarios/command-*).
"""

from __future__ import annotations

import time
from pathlib import Path

from engine_support import change, converge_root, make_repo
from svc_support import process_alive

from reconciler.record.report import EXIT_FAILED


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="slow" run="sleep 60 &amp; echo $! > child; '
                               'sleep 60" timeout="1"/>')
    root = tmp_path / "root"

    report = converge_root(repo, root, host_commands=True)

    assert report.exit_code & EXIT_FAILED
    assert "timed out after 1s" in (change(report, "command:slow").detail or "")
    child = int((root / "child").read_text())
    deadline = time.monotonic() + 5  # bounded: SIGKILL has been sent, the child must go
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child)
