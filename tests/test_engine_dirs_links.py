"""Directory and symlink actions through the whole pipeline."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine_support import action, change, converge_root, make_repo

from reconciler.record.report import EXIT_CHANGES, EXIT_FAILED, EXIT_IN_SYNC


def test_directory_is_created_with_parents_mode_and_owner(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/app/data" mode="0750" owner="65534" '
                               'group="65534"/>')
    root = tmp_path / "root"

    report = converge_root(repo, root)

    st = (root / "srv/app/data").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 65534, 65534)
    assert stat.S_IMODE((root / "srv/app").stat().st_mode) == 0o755
    assert change(report, "directory:/srv/app/data").summary == \
        "create (and parents /srv, /srv/app)"
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_directory_with_wrong_mode_is_chmodded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/data" mode="0700"/>')
    root = tmp_path / "root"
    (root / "srv/data").mkdir(parents=True)
    (root / "srv/data/keep").write_text("k")
    (root / "srv/data").chmod(0o777)

    report = converge_root(repo, root)

    assert change(report, "directory:/srv/data").summary == "mode 0777 → 0700"
    assert stat.S_IMODE((root / "srv/data").stat().st_mode) == 0o700
    assert (root / "srv/data/keep").read_text() == "k"


def test_directory_absent_removes_an_empty_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/old" ensure="absent"/>')
    root = tmp_path / "root"
    (root / "srv/old").mkdir(parents=True)

    report = converge_root(repo, root)

    assert report.exit_code == EXIT_CHANGES
    assert not (root / "srv/old").exists()


def test_directory_absent_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/old" ensure="absent"/>')
    root = tmp_path / "root"
    (root / "srv/old").mkdir(parents=True)
    (root / "srv/old/data").write_text("precious")

    report = converge_root(repo, root)

    assert report.exit_code & EXIT_FAILED
    assert "non-empty" in (change(report, "directory:/srv/old").detail or "")
    assert (root / "srv/old/data").read_text() == "precious"


def test_directory_where_a_file_is_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<directory path="/srv/data"/>')
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    (root / "srv/data").write_text("a file")

    report = converge_root(repo, root)

    assert action(report, "directory:/srv/data").status == "failed"
    assert "is a file, not a directory" in (action(report, "directory:/srv/data").error or "")
    assert (root / "srv/data").read_text() == "a file"


def test_symlink_is_created(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<symlink path="/usr/local/bin/app" target="/opt/app/bin/app"/>')
    root = tmp_path / "root"

    report = converge_root(repo, root)

    assert os.readlink(root / "usr/local/bin/app") == "/opt/app/bin/app"
    assert change(report, "symlink:/usr/local/bin/app").status == "applied"
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_symlink_with_another_target_is_retargeted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<symlink path="/etc/current" target="v2"/>')
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/current").symlink_to("v1")

    report = converge_root(repo, root)

    assert change(report, "symlink:/etc/current").summary == "target v1 → v2"
    assert os.readlink(root / "etc/current") == "v2"


def test_file_is_replaced_by_the_symlink(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<symlink path="/etc/current" target="v2"/>')
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/current").write_text("old file")

    report = converge_root(repo, root)

    assert change(report, "symlink:/etc/current").summary == "replace file with symlink → v2"
    assert os.readlink(root / "etc/current") == "v2"


def test_symlink_refuses_to_replace_a_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<symlink path="/etc/current" target="v2"/>')
    root = tmp_path / "root"
    (root / "etc/current").mkdir(parents=True)
    (root / "etc/current/data").write_text("x")

    report = converge_root(repo, root)

    assert report.exit_code & EXIT_FAILED
    assert "is a directory" in (action(report, "symlink:/etc/current").error or "")
    assert (root / "etc/current/data").read_text() == "x"


def test_symlink_absent_removes_the_link_not_its_target(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<symlink path="/etc/current" ensure="absent"/>')
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/v1").write_text("target")
    (root / "etc/current").symlink_to("v1")

    report = converge_root(repo, root)

    assert change(report, "symlink:/etc/current").summary == "remove symlink → v1"
    assert not os.path.lexists(root / "etc/current")
    assert (root / "etc/v1").read_text() == "target"
