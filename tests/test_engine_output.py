"""Text output of a large run: every change listed, diffs bounded unless asked for."""

from __future__ import annotations

from pathlib import Path

from engine_support import cli_run, make_repo

from reconciler.cli.show import MAX_DIFFS

FILES = MAX_DIFFS + 5
BODY = "".join(f'<file path="/etc/many/f{index:02d}"><content>line {index}\n</content></file>\n'
               for index in range(FILES))


def test_large_audit_lists_every_change_but_only_the_first_diffs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, BODY)

    done = cli_run("audit", repo, tmp_path / "node")

    assert sum(line.startswith("pending") for line in done.stdout.splitlines()) == FILES
    assert done.stdout.count("+++ desired:") == MAX_DIFFS
    assert "(5 more diffs not shown: -v shows them all, so does --format json)" in done.stdout


def test_verbose_audit_shows_every_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, BODY)

    done = cli_run("audit", repo, tmp_path / "node", "-v")

    assert done.stdout.count("+++ desired:") == FILES
    assert "more diffs not shown" not in done.stdout
