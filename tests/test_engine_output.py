"""Text output: a hand edit names the commit that wrote the file; a large run lists every
change but bounds its diffs unless asked for."""

from __future__ import annotations

from pathlib import Path

from engine_support import cli_run, converge_root, make_repo

from reconciler.cli.show import MAX_DIFFS
from reconciler.record.report import EXIT_CHANGES

FILES = MAX_DIFFS + 5
BODY = "".join(f'<file path="/etc/many/f{index:02d}"><content>line {index}\n</content></file>\n'
               for index in range(FILES))


def test_large_audit_lists_every_change_but_only_the_first_diffs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, BODY)

    done = cli_run("audit", repo, tmp_path / "node")

    rows = [line for line in done.stdout.splitlines() if not line.startswith("pending (exit")]
    assert sum(line.startswith("pending ") for line in rows) == FILES
    assert done.stdout.count("+++ desired:") == MAX_DIFFS
    assert "(5 more diffs not shown: -v shows them all, so does --format json)" in done.stdout


def test_verbose_audit_shows_every_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, BODY)

    done = cli_run("audit", repo, tmp_path / "node", "-v")

    assert done.stdout.count("+++ desired:") == FILES
    assert "more diffs not shown" not in done.stdout


def test_hand_edit_is_reported_with_the_commit_that_wrote_the_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" template="web/app.conf.j2"/>',
                     templates={"web/app.conf.j2": "setting = 1\n"})
    first = repo.commit("first")
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    (root / "etc/app.conf").write_text("setting = 99\n")

    done = cli_run("audit", repo, root, "--rev", first)

    assert done.returncode == EXIT_CHANGES
    assert f"edited by hand since reconciler wrote it at {first[:12]}" in done.stdout
    assert "-setting = 99" in done.stdout and "+setting = 1" in done.stdout
