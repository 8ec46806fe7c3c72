"""Owner and group, which only root can set: enforced on create, fixed alone in place.

Everything else about files, directories and symlinks is a scenario (tests/scenarios/).
"""

from __future__ import annotations

import stat
from pathlib import Path

from engine_support import change, converge_root, make_repo

from reconciler.record.report import EXIT_IN_SYNC


def test_mode_owner_and_group_are_set(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" mode="0640" owner="65534" '
                               'group="65534"><content>x\n</content></file>')
    root = tmp_path / "root"

    converge_root(repo, root)

    st = (root / "etc/app.conf").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 65534, 65534)
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_only_owner_wrong_fixes_only_the_owner(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" owner="65534"><content>same\n'
                               '</content></file>')
    root = tmp_path / "root"
    live = root / "etc/app.conf"
    live.parent.mkdir(parents=True)
    live.write_text("same\n")
    inode = live.stat().st_ino

    report = converge_root(repo, root)

    assert change(report, "file:/etc/app.conf").summary == "owner 0 → 65534"
    assert (live.stat().st_uid, live.stat().st_ino) == (65534, inode)


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
