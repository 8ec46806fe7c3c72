"""An audit that finds exactly the drift the last audit found, with nothing else changed,
says it again without importing the engine: the same output on a pipe, the run recorded
as the full audit would record it. Anything that could change what it says (another edit,
another drifted path, another run's report in between, a new history record, a change
window, a terminal) takes the full audit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from clirun import RECONCILER, quiet_process, reconciler
from gitutil_repo import git
from quiet_support import applied_node
from test_quiet_cycle import FLEET, args, make_repo
from test_quiet_partial import STATE, last_run

from reconciler.entry import quiet_run


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output that rich would take for a pipe, whatever the environment running the tests."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def root(tmp_path: Path, repo: Path) -> Path:
    """A settled node with one file edited by hand, audited once in full."""
    node = applied_node(tmp_path, repo)
    edit(node, "# hand edit\n")
    assert reconciler(args(repo, node, "audit")).returncode == 2
    return node


def edit(root: Path, line: str, name: str = "a.conf") -> None:
    with open(root / "etc/app" / name, "a") as handle:
        handle.write(line)


def without_time(output: str) -> str:
    """The output but the run's duration, which ends its last line."""
    body, _, last = output.rstrip("\n").rpartition("\n")
    return f"{body}\n{last.rpartition(' in ')[0]}"


def history(root: Path) -> list[str]:
    return reconciler(["log", "--root", root]).stdout.splitlines()


def repeated(repo: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str]:
    """What the `reconciler audit` process answers before the command line interface."""
    capsys.readouterr()
    code = quiet_run(args(repo, root, "audit"))
    return code, capsys.readouterr().out


def test_the_same_drift_again_prints_what_the_full_audit_printed(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = reconciler(args(repo, root, "audit")).stdout

    code, output = repeated(repo, root, capsys)

    assert code == 2
    assert without_time(output) == without_time(whole)
    assert "-# hand edit" in output
    assert output.splitlines()[-1].startswith("drift (exit 2): 3 in sync, 1 drift")


def test_the_repeated_audit_is_recorded_as_the_full_audit_records_it(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, logged = last_run(root), history(root)
    metrics = (root / STATE / "reconciler.prom").read_text()

    assert repeated(repo, root, capsys)[0] == 2

    after = last_run(root)
    assert after["started"] > before["started"]
    assert after["facts"] is None, "not gathered"
    assert {k: v for k, v in after.items() if k not in ("started", "duration_s", "facts")} \
        == {k: v for k, v in before.items() if k not in ("started", "duration_s", "facts")}
    assert history(root) == logged, "a repeated finding is no news to the history"
    assert (root / STATE / "reconciler.prom").read_text() != metrics
    assert json.loads((root / STATE / "last-success.json").read_text())["time"] \
        == after["started"]
    assert reconciler(["status", "--root", root]).returncode == 0


def test_every_repeat_answers_until_something_changes(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert [repeated(repo, root, capsys)[0] for _ in range(3)] == [2, 2, 2]
    edit(root, "# another\n")
    assert repeated(repo, root, capsys) == (None, "")


def test_a_process_that_repeats_an_audit_loads_no_engine_library(
    repo: Path, root: Path
) -> None:
    printed, answer = quiet_process(args(repo, root, "audit"))
    assert answer == "2 []"
    process = subprocess.run([RECONCILER, *args(repo, root, "audit")], capture_output=True,
                             text=True, check=False)
    assert process.returncode == 2
    assert without_time(process.stdout) == without_time(printed)


def test_another_edit_of_the_drifted_file_takes_the_full_audit(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(root, "# and another\n")

    assert repeated(repo, root, capsys) == (None, "")
    assert "-# and another" in reconciler(args(repo, root, "audit")).stdout


def test_another_drifted_path_takes_the_full_audit(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(root, "# hand edit\n", "b.conf")

    assert repeated(repo, root, capsys) == (None, "")
    assert "2 drift" in reconciler(args(repo, root, "audit")).stdout


def test_a_drift_put_back_by_hand_is_in_sync_again(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "etc/app/a.conf").write_text("workers = 8\n")

    code, output = repeated(repo, root, capsys)

    assert code == 0 and "in-sync (exit 0): 4 in sync" in output


def test_another_report_in_between_takes_the_full_audit(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A verbose audit reports every action in sync too: the last run no longer says
    # what the kept output says.
    assert reconciler([*args(repo, root, "audit"), "--verbose"]).returncode == 2

    assert repeated(repo, root, capsys) == (None, "")


def test_a_history_record_made_since_takes_the_full_audit(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = ("--git-dir", str(root / STATE / "history"))
    tree = git(root, *history, "rev-parse", "HEAD^{tree}")
    commit = git(root, *history, "commit-tree", tree, "-p", "HEAD", "-m", "elsewhere")
    git(root, *history, "update-ref", "refs/heads/main", commit)

    assert repeated(repo, root, capsys) == (None, "")


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_output_rich_may_colour_takes_the_full_audit(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "1")

    assert repeated(repo, root, capsys) == (None, "")


def test_an_unreadable_repeat_record_takes_the_full_audit_which_keeps_a_sound_one(
    repo: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = root / STATE / "repeat.json"
    kept.write_text("{not json")

    assert repeated(repo, root, capsys) == (None, "")
    assert not kept.exists()
    assert reconciler(args(repo, root, "audit")).returncode == 2
    assert repeated(repo, root, capsys)[0] == 2


def test_an_apply_leaves_nothing_to_repeat(repo: Path, root: Path) -> None:
    assert reconciler([*args(repo, root), "--max-severity", "none"]).returncode == 2

    assert not (root / STATE / "repeat.json").exists()


def test_a_node_with_a_change_window_keeps_nothing_to_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "fleet.xml").write_text(FLEET.replace(
        '<policy max-severity="reload"/>',
        '<policy max-severity="reload" window="Sat 01:00-02:00"/>'))
    node = applied_node(tmp_path, repo)
    edit(node, "# hand edit\n")

    assert reconciler(args(repo, node, "audit")).returncode == 2

    assert not (node / STATE / "repeat.json").exists()
    assert repeated(repo, node, capsys) == (None, "")
