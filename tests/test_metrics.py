"""Prometheus textfile metrics of the last run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from agent_support import run_report

from reconciler.record.metrics import render, write

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? '
                    r"(-?[0-9.e+]+)$")


def samples(text: str) -> dict[str, float]:
    """Every sample line as `name{labels}` -> value; every name has HELP and TYPE lines."""
    found: dict[str, float] = {}
    typed = set(re.findall(r"^# TYPE ([a-z_]+) gauge$", text, re.MULTILINE))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        assert match.group(1) in typed
        found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


def test_metrics_of_a_held_run() -> None:
    report = run_report(
        "held", started=STARTED,
        changes=[("/etc/a", "held", "restart", "pending"), ("/etc/b", "held", "restart",
                                                            "pending"),
                 ("/etc/c", "applied", "none", "edited-by-hand")],
        in_sync=7, applied=1, held=2, edited_by_hand=1,
    )  # fmt: skip
    found = samples(render(report))
    assert found["reconciler_last_run_timestamp_seconds"] == STARTED.timestamp()
    assert found["reconciler_last_run_duration_seconds"] == 0.5
    assert found['reconciler_last_run_result{result="held"}'] == 1
    assert sum(v for k, v in found.items() if k.startswith("reconciler_last_run_result{")) == 1
    assert found['reconciler_last_run_count{state="in_sync"}'] == 7
    assert found['reconciler_last_run_count{state="applied"}'] == 1
    assert found['reconciler_last_run_count{state="edited_by_hand"}'] == 1
    assert found['reconciler_last_run_held{severity="restart"}'] == 2
    assert found['reconciler_last_run_held{severity="reboot"}'] == 0
    assert found["reconciler_last_run_partial"] == 0
    assert found[
        'reconciler_config_info{commit="0123456789abcdef0123456789abcdef01234567",'
        'node="web-01.tickets.chi1.sa",mode="change"}'] == 1


def test_watch_audit_is_marked_partial() -> None:
    assert "reconciler_last_run_partial 1\n" in render(run_report(), partial=True)


def test_stale_source_is_flagged() -> None:
    assert samples(render(run_report(stale="source unavailable")))[
        "reconciler_source_stale"] == 1


def test_refused_run_without_commit_has_an_empty_commit_label() -> None:
    report = run_report("refused", problems=["classes/web.xml:3: bad"])
    report.config_commit = None
    found = samples(render(report))
    assert found['reconciler_config_info{commit="",node="web-01.tickets.chi1.sa",'
                 'mode="change"}'] == 1
    assert found['reconciler_last_run_result{result="refused"}'] == 1


def test_label_values_are_escaped() -> None:
    report = run_report()
    report.node = 'odd"node\\name'
    assert 'node="odd\\"node\\\\name"' in render(report)
    samples(render(report))


def test_write_replaces_the_file_atomically_and_readably(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "reconciler.prom"
    write(target, run_report("in-sync"))
    write(target, run_report("changed"), partial=True)
    assert sorted(p.name for p in target.parent.iterdir()) == ["reconciler.prom"]
    assert target.stat().st_mode & 0o777 == 0o644
    found = samples(target.read_text())
    assert found['reconciler_last_run_result{result="changed"}'] == 1
    assert found["reconciler_last_run_partial"] == 1
