"""A run report printed to a pipe is exactly what rich prints without a terminal, though
rich is not loaded for it: the same rows, diffs and lines, whatever odd characters
(tabs, carriage returns, bells, line breaks) the summaries, errors and diffs carry. On
a terminal rich prints it, as a table."""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clirun import fresh_python
from rich.console import Console
from rich.text import Text

from reconciler.cli import show
from reconciler.record.report import (
    ActionReport,
    ChangeReport,
    CheckReport,
    Counts,
    RunReport,
    SourceReport,
)

ODD = ["\t", "\r", "\x07", "\x08", "\x0b", "\x0c", "\n", " ", "é", "—", "x", "/etc/a b"]


def odd_text(rng: random.Random) -> str:
    return "".join(rng.choice(ODD) for _ in range(rng.randrange(1, 12)))


def report_with_odd_text(seed: int) -> RunReport:
    rng = random.Random(seed)
    changes = [ChangeReport(op="update", summary=odd_text(rng), path=f"/etc/f{i}",
                            status=rng.choice(["applied", "pending", "held", "failed"]),
                            severity="none", drift=rng.choice(["pending", "edited-by-hand"]),
                            detail=rng.choice([None, odd_text(rng)]),
                            diff=f"--- a\n+++ b\n-{odd_text(rng)}\n+{odd_text(rng)}\n")
               for i in range(rng.randrange(1, 30))]
    actions = [ActionReport(id=f"file:/etc/f{i}", kind="file", declared_in="web", origin="x:1",
                            status=change.status, changes=[change])
               for i, change in enumerate(changes)]
    actions.append(ActionReport(id="command:odd", kind="command", declared_in="web",
                                origin="x:2", status="failed", error=odd_text(rng),
                                checks=[CheckReport(run="nginx -t", origin="x:3",
                                                    status="failed", detail=odd_text(rng),
                                                    restored=["/etc/f0"])]))
    return RunReport(node="web-01.tickets.chi1.sa", mode="change", root="/", config_commit=None,
                     ceiling="reload", started=datetime.now(UTC), duration_s=0.25,
                     result="failed", exit_code=6, counts=Counts(applied=2, failed=1),
                     actions=actions, problems=[odd_text(rng)], notes=[odd_text(rng)],
                     orphans=[ChangeReport(op="remove", summary=odd_text(rng), path="/etc/gone",
                                           status="pending", severity="none", drift="pending")],
                     source=SourceReport(stale=odd_text(rng)))


def as_rich_prints_it(report: RunReport) -> str:
    """The report printed by rich itself to a file (no terminal): each line through
    `Console.print`, rows and diffs as rich text made plain."""
    out = io.StringIO()
    console = Console(file=out, highlight=False)
    layout = show._layout(report, verbose=False)
    for line in layout.head:
        console.print(Text.assemble(*line), soft_wrap=True)
    rows = Text()
    for row in layout.rows:
        rows.append(Text(row.status[0]))
        rows.append(f" {row.severity or '-'} {row.action} ")
        rows.append_text(Text("; ").join(Text.assemble(*row.what).split("\n")))
        rows.append("\n")
    out.write(rows.plain)
    diffs = Text()
    for diff in layout.diffs:
        for diff_line in diff.splitlines(keepends=True):
            diffs.append(diff_line)
    out.write(diffs.plain)
    for line in [*layout.tail, layout.tally]:
        console.print(Text.assemble(*line), soft_wrap=True)
    return out.getvalue()


@pytest.mark.parametrize("seed", range(40))
def test_a_report_on_a_pipe_is_what_rich_prints_without_a_terminal(
    seed: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    report = report_with_odd_text(seed)

    show.print_report(report)

    assert capsys.readouterr().out == as_rich_prints_it(report)


def test_printing_a_report_to_a_pipe_loads_no_rich(tmp_path: Path) -> None:
    saved = tmp_path / "report.json"
    saved.write_text(report_with_odd_text(0).model_dump_json())
    probe = ("import sys; from reconciler.record.report import RunReport; "
             "from reconciler.cli.show import print_report; "
             f"print_report(RunReport.model_validate_json(open({str(saved)!r}).read())); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))")
    done = fresh_python(probe, env={"PATH": "/usr/bin:/bin"})
    assert done.stdout.splitlines()[-1] == "[]"


def test_a_terminal_gets_the_table(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "120")

    show.print_report(report_with_odd_text(1))

    printed = capsys.readouterr().out
    assert "\x1b[" in printed, "coloured"
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).split() for line in printed.splitlines()]
    assert ["status", "sev", "action", "what"] in lines
