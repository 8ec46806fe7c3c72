"""Three states: pending vs edited by hand vs both, local-edits policy, orphans and pruning."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from engine_support import (
    ConfigRepo,
    applied_json,
    change,
    cli_run,
    converge_root,
    make_repo,
    state_dir,
)

from reconciler.record.report import EXIT_CHANGES, EXIT_HELD, EXIT_IN_SYNC

CONF = '<file path="/etc/app.conf" template="web/app.conf.j2"/>'


def _committed(tmp_path: Path, **kwargs: str) -> tuple[ConfigRepo, str]:
    repo = make_repo(tmp_path, CONF, templates={"web/app.conf.j2": "setting = 1\n"}, **kwargs)
    return repo, repo.commit("first")


def test_config_change_is_pending_not_edited(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    repo.write("templates/web/app.conf.j2", "setting = 2\n")
    second = repo.commit("second")

    report = converge_root(repo, root, "audit", rev=second)

    found = change(report, "file:/etc/app.conf")
    assert (found.drift, found.last_applied_commit) == ("pending", first)
    assert "-setting = 1\n+setting = 2\n" in (found.diff or "")
    assert report.counts.pending == 1 and report.counts.edited_by_hand == 0


def test_hand_edit_is_reported_with_the_commit_that_wrote_the_file(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    (root / "etc/app.conf").write_text("setting = 99\n")

    done = cli_run("audit", repo, root, "--rev", first)

    assert done.returncode == EXIT_CHANGES
    assert f"edited by hand since reconciler wrote it at {first[:12]}" in done.stdout
    assert "-setting = 99" in done.stdout and "+setting = 1" in done.stdout


def test_hand_edit_and_config_change_together_are_both(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    (root / "etc/app.conf").write_text("setting = 99\n")
    repo.write("templates/web/app.conf.j2", "setting = 2\n")
    second = repo.commit("second")

    report = converge_root(repo, root, "audit", rev=second)

    found = change(report, "file:/etc/app.conf")
    assert (found.drift, found.last_applied_commit) == ("both", first)
    assert report.counts.edited_by_hand == 1


def test_mode_changed_by_hand_is_an_edit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" mode="0640"><content>x</content>'
                               '</file>')
    root = tmp_path / "root"
    converge_root(repo, root)
    (root / "etc/app.conf").chmod(0o666)

    report = converge_root(repo, root, "audit")

    found = change(report, "file:/etc/app.conf")
    assert (found.drift, found.summary) == ("edited-by-hand", "mode 0666 → 0640")


def test_deleted_by_hand_is_an_edit(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    (root / "etc/app.conf").unlink()

    report = converge_root(repo, root, rev=first)

    assert change(report, "file:/etc/app.conf").drift == "edited-by-hand"
    assert (root / "etc/app.conf").read_text() == "setting = 1\n"


def test_overwrite_policy_heals_a_hand_edit(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    (root / "etc/app.conf").write_text("setting = 99\n")

    healed = converge_root(repo, root, rev=first)
    again = converge_root(repo, root, rev=first)

    assert change(healed, "file:/etc/app.conf").status == "applied"
    assert (root / "etc/app.conf").read_text() == "setting = 1\n"
    assert again.exit_code == EXIT_IN_SYNC


def test_hold_policy_keeps_a_hand_edit(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path, node_policy='local-edits="hold"')
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    (root / "etc/app.conf").write_text("setting = 99\n")

    report = converge_root(repo, root, rev=first)

    found = change(report, "file:/etc/app.conf")
    assert found.status == "held"
    assert found.detail == f"edited by hand since reconciler wrote it at {first[:12]}; " \
                           "policy local-edits=hold"
    assert report.exit_code == EXIT_HELD
    assert (root / "etc/app.conf").read_text() == "setting = 99\n"


def test_hold_policy_still_applies_plain_config_changes(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path, node_policy='local-edits="hold"')
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    repo.write("templates/web/app.conf.j2", "setting = 2\n")

    report = converge_root(repo, root, rev=repo.commit("second"))

    assert report.exit_code == EXIT_CHANGES
    assert (root / "etc/app.conf").read_text() == "setting = 2\n"


def test_last_applied_record_names_path_type_mode_owner_hash_and_commit(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"

    converge_root(repo, root, rev=first)

    record = applied_json(root)["paths"]["/etc/app.conf"]  # type: ignore[index]
    assert record == {"type": "file", "action": "file:/etc/app.conf", "mode": 0o644, "uid": 0,
                      "gid": 0, "commit": first,
                      "sha256": hashlib.sha256(b"setting = 1\n").hexdigest()}
    assert "setting" not in (state_dir(root) / "applied.json").read_text()


def test_orphan_is_reported_and_kept_without_prune(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    repo.set_class('<directory path="/srv"/>')

    report = converge_root(repo, root, rev=repo.commit("drop the file"))

    [orphan] = report.orphans
    assert (orphan.path, orphan.status) == ("/etc/app.conf", "held")
    assert orphan.summary == f"orphan file: no longer declared (written at {first[:12]})"
    assert (root / "etc/app.conf").exists()
    assert report.exit_code == EXIT_CHANGES | EXIT_HELD


def test_orphan_is_removed_with_prune(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path, node_policy='prune="true"')
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    repo.set_class('<directory path="/srv"/>')
    second = repo.commit("drop the file")

    report = converge_root(repo, root, rev=second)
    again = converge_root(repo, root, rev=second)

    assert [(o.path, o.status) for o in report.orphans] == [("/etc/app.conf", "applied")]
    assert not (root / "etc/app.conf").exists()
    assert "/etc/app.conf" not in applied_json(root)["paths"]  # type: ignore[operator]
    assert again.exit_code == EXIT_IN_SYNC


def test_pruned_secret_orphan_is_not_backed_up(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/s.ini" secret="true"><content>pw=topsecret'
                               '</content></file>', node_policy='prune="true"')
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.set_class('<directory path="/srv"/>')

    report = converge_root(repo, root)

    assert [o.status for o in report.orphans] == ["applied"]
    backups = state_dir(root) / "backups"
    saved = [p.read_bytes() for p in backups.iterdir()] if backups.exists() else []
    assert not any(b"topsecret" in data for data in saved)


def test_orphan_removed_by_hand_is_forgotten(tmp_path: Path) -> None:
    repo, first = _committed(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root, rev=first)
    repo.set_class('<directory path="/srv"/>')
    second = repo.commit("drop the file")
    os.unlink(root / "etc/app.conf")

    report = converge_root(repo, root, rev=second)

    assert report.orphans == []
    assert "/etc/app.conf" not in applied_json(root)["paths"]  # type: ignore[operator]


def test_pruned_directory_goes_after_the_orphans_inside_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/app"/><file path="/srv/app/conf">'
                               '<content>x</content></file>', node_policy='prune="true"')
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.set_class('<directory path="/srv"/>')

    report = converge_root(repo, root)

    assert [(o.path, o.status) for o in report.orphans] == [
        ("/srv/app/conf", "applied"), ("/srv/app", "applied")]
    assert os.listdir(root / "srv") == []


def test_orphan_directory_holding_other_files_is_kept(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/app"/>', node_policy='prune="true"')
    root = tmp_path / "root"
    converge_root(repo, root)
    (root / "srv/app/data").write_text("precious")
    repo.set_class('<directory path="/srv"/>')

    report = converge_root(repo, root)

    [orphan] = report.orphans
    assert (orphan.status, orphan.detail) == (
        "held", "directory still holds 1 entry reconciler did not write; left in place")
    assert (root / "srv/app/data").read_text() == "precious"
