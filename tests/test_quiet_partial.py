"""A settled node with a few paths drifted and nothing upstream changed: `audit` and
`apply` plan only those paths' actions, against the desired state the settled run kept
(no compile, no render), and report, record and repair them as a full run does."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from clirun import reconciler
from gitutil_repo import git
from quiet_support import applied_node, count_compiles, paths_passed
from test_quiet_cycle import args, full, make_repo

from reconciler import quiet
from reconciler.entry import quiet_run
from reconciler.record import desired
from reconciler.record.history import History
from reconciler.statedir import StateDir
from reconciler.system.local import LocalSystem

STATE = "var/lib/reconciler"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def root(tmp_path: Path, repo: Path) -> Path:
    return applied_node(tmp_path, repo)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return count_compiles(monkeypatch)


def edit_by_hand(root: Path) -> Path:
    path = root / "etc/app/a.conf"
    with open(path, "a") as handle:
        handle.write("# hand edit\n")
    return path


def edited_twice(root: Path, tmp_path: Path) -> Path:
    """The node edited by hand, and a copy of it without the kept desired state (so a run
    there is a full one)."""
    edit_by_hand(root)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    (copy / STATE / desired.PACK).unlink()
    return copy


def last_run(root: Path) -> dict[str, Any]:
    run: dict[str, Any] = json.loads((root / STATE / "last-run.json").read_text())
    return run


def test_an_audit_of_a_hand_edit_plans_only_that_file(
    repo: Path, root: Path, compiles: list[str]
) -> None:
    edited = edit_by_hand(root)

    done = reconciler(args(repo, root, "audit"))

    assert done.returncode == 2, done.stdout
    assert "file:/etc/app/a.conf content changed [edited by hand" in done.stdout
    assert "-# hand edit" in done.stdout  # what the apply would take out
    assert done.stdout.splitlines()[-1].startswith("drift (exit 2): 3 in sync, 1 drift")
    assert edited.read_text().endswith("# hand edit\n")
    assert compiles == []
    assert [action["id"] for action in last_run(root)["actions"]] == ["file:/etc/app/a.conf"]


def test_the_partial_audit_reports_what_the_full_audit_reports(
    repo: Path, root: Path, tmp_path: Path
) -> None:
    copy = edited_twice(root, tmp_path)

    assert full(repo, root, "audit") == 2
    assert full(repo, copy, "audit") == 2

    partial, whole = last_run(root), last_run(copy)
    for name in ("result", "exit_code", "counts", "ceiling", "mode", "problems"):
        assert partial[name] == whole[name], name
    assert partial["actions"] == [a for a in whole["actions"] if a["status"] != "in-sync"]


def test_an_apply_repairs_the_hand_edit_keeps_a_backup_and_records_it(
    repo: Path, root: Path, compiles: list[str]
) -> None:
    edited = edit_by_hand(root)

    done = reconciler(args(repo, root))

    assert done.returncode == 2, done.stdout
    assert done.stdout.splitlines()[-1].startswith(
        "changed (exit 2): 3 in sync, 1 applied, 1 hand edit")
    assert edited.read_text() == "workers = 8\n"
    assert compiles == []
    index = (root / STATE / "backups" / "index.jsonl").read_text()
    assert index.count('"/etc/app/a.conf"') == 1, "backed up ahead, not again when replaced"
    logged = reconciler(["log", "--root", root]).stdout.splitlines()
    assert [line.split()[5] for line in logged] == ["changed", "changed"]
    assert quiet_run(args(repo, root)) == 0, "settled again, all four paths in sync"
    assert last_run(root)["counts"]["in_sync"] == 4


def test_a_drift_with_a_config_edit_takes_the_full_run(
    repo: Path, root: Path, compiles: list[str]
) -> None:
    edit_by_hand(root)
    (repo / "templates" / "bench" / "b.conf.j2").write_text("b2 {{ node.name }}\n")

    assert full(repo, root) == 2

    assert len(compiles) == 1
    assert (root / "etc/app/a.conf").read_text() == "workers = 8\n"
    assert (root / "etc/app/b.conf").read_text().startswith("b2 ")


def test_a_kept_desired_state_that_does_not_match_the_record_is_not_used(
    repo: Path, root: Path, compiles: list[str]
) -> None:
    pack = root / STATE / desired.PACK
    pack.write_bytes(pack.read_bytes().replace(b"workers = 8", b"workers = 9"))
    edited = edit_by_hand(root)

    assert full(repo, root) == 2

    assert len(compiles) == 1, "the full run"
    assert edited.read_text() == "workers = 8\n"


@pytest.mark.parametrize("option", [["--verbose"], ["--debug"], ["--format", "json"]])
def test_options_that_show_every_action_take_the_full_run(
    repo: Path, root: Path, compiles: list[str], option: list[str]
) -> None:
    edit_by_hand(root)

    reconciler([*args(repo, root, "audit"), *option])

    assert len(compiles) == 1


@pytest.mark.parametrize("drift", ["mode", "missing", "link target"])
def test_other_drift_is_repaired_by_its_action_alone(
    repo: Path, root: Path, compiles: list[str], drift: str
) -> None:
    if drift == "mode":
        (root / "etc/app/b.conf").chmod(0o666)
    elif drift == "missing":
        (root / "etc/app/b.conf").unlink()
    else:
        (root / "etc/app/current").unlink()
        (root / "etc/app/current").symlink_to("/etc/app/b.conf")

    assert full(repo, root) == 2

    assert compiles == []
    assert len(last_run(root)["actions"]) == 1
    assert last_run(root)["counts"]["in_sync"] == 3
    assert (root / "etc/app/b.conf").stat().st_mode & 0o777 == 0o640
    assert (root / "etc/app/current").readlink() == Path("/etc/app/a.conf")
    assert quiet_run(args(repo, root)) == 0


def test_a_desired_state_half_written_by_a_killed_run_is_removed(
    repo: Path, root: Path
) -> None:
    torn = root / STATE / f".{desired.PACK}.k1ll3d_x.tmp"
    torn.write_bytes(b"half")
    edit_by_hand(root)

    done = reconciler(args(repo, root))

    assert done.returncode == 2, done.stdout
    assert not torn.exists()


def test_a_symlink_in_place_of_the_desired_state_is_refused(
    repo: Path, root: Path, tmp_path: Path
) -> None:
    pack = root / STATE / desired.PACK
    pack.rename(tmp_path / "elsewhere")
    pack.symlink_to(tmp_path / "elsewhere")

    done = reconciler(args(repo, root, "audit"))

    assert done.returncode == 1
    assert "desired.pack: is a symlink, where reconciler keeps its own file" in done.stdout


def test_a_drifted_audit_reads_each_managed_path_once(
    repo: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_by_hand(root)
    read = paths_passed(monkeypatch, quiet, "live_entry")
    # What the `reconciler` process does: the quiet answer, then the full run it hands to.
    assert quiet_run(args(repo, root, "audit")) is None
    assert reconciler(args(repo, root, "audit")).returncode == 2
    assert sorted(read) == sorted(set(read)) and "/etc/app/a.conf" in read
    (root / "etc/app/a.conf").write_text("workers = 8\n")
    assert reconciler(args(repo, root, "audit")).returncode == 0, "read afresh, in sync"


def history_files(root: Path) -> dict[str, str]:
    """The blob of each managed file in the node's newest history record."""
    listed = git(root, "--git-dir", str(root / STATE / "history"), "ls-tree", "-r", "HEAD")
    return {line.split("\t")[1]: line.split()[2] for line in listed.splitlines()
            if not line.endswith("\trun.json")}


def test_a_partial_repair_records_the_history_a_full_repair_records(
    repo: Path, root: Path, tmp_path: Path
) -> None:
    copy = edited_twice(root, tmp_path)

    assert full(repo, root) == 2
    assert full(repo, copy) == 2

    assert history_files(root) == history_files(copy)
    assert len(history_files(root)) == 2  # the two files; the link and directory have no blob


def test_a_partial_repair_reads_only_the_drifted_file_for_the_history(
    repo: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_by_hand(root)
    read = paths_passed(monkeypatch, LocalSystem, "read")
    assert full(repo, root) == 2

    assert "/etc/app/b.conf" not in read, "found as the settled run left it: not read again"
    assert "/etc/app/a.conf" in read


def test_a_first_apply_records_the_files_it_wrote_without_reading_them_back(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = paths_passed(monkeypatch, LocalSystem, "read")
    root = applied_node(tmp_path, repo)

    assert not {"/etc/app/a.conf", "/etc/app/b.conf"} & set(read), \
        "none existed to compare, and what was written is known"
    history = root / STATE / "history"
    for path in ("etc/app/a.conf", "etc/app/b.conf"):
        on_disk = git(root, "hash-object", str(root / path))
        assert git(root, "--git-dir", str(history), "rev-parse", f"HEAD:{path}") == on_disk
    entries = json.loads(Path(quiet.quiet_path(StateDir.under(str(root)))).read_text())["entries"]
    assert {entry[0]: entry[5] for entry in entries if entry[1] == "file"} == {
        f"/{path}": hashlib.sha256((root / path).read_bytes()).hexdigest()
        for path in ("etc/app/a.conf", "etc/app/b.conf")}


def test_a_repair_adds_its_history_record_without_reading_the_last_one(
    repo: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_by_hand(root)
    read = paths_passed(monkeypatch, History, "read")
    before = history_files(root)

    assert full(repo, root) == 2

    assert read == [], "a run that applied something is new whatever the last record says"
    assert history_files(root) == before
    assert git(root, "--git-dir", str(root / STATE / "history"), "rev-list", "--count",
               "HEAD") == "2"
