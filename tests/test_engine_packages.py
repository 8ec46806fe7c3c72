"""Package actions with real dpkg against a temporary admin directory under the root."""

from __future__ import annotations

import re
from pathlib import Path

from engine_support import ConfigRepo, change, converge_root, desired, make_repo, tree_state
from pkg_debs import TEST_FILE, TEST_PACKAGE, build_deb, make_dpkg_root

from reconciler.record.report import EXIT_CHANGES, EXIT_HELD, EXIT_IN_SYNC
from reconciler.run import converge
from reconciler.statedir import StateDir
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import LoggingSystem


def _repo_with_debs(tmp_path: Path, body: str, *versions: str) -> ConfigRepo:
    repo = make_repo(tmp_path, body)
    work = tmp_path / "debs"
    work.mkdir()
    for version in versions:
        deb = build_deb(work, version)
        repo.write(f"templates/pkgs/{deb.name}", deb.read_bytes())
    return repo


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_dpkg_root(root)
    return root


def _deb(version: str) -> str:
    return f"pkgs/{TEST_PACKAGE}_{version}_all.deb"


def test_package_is_installed_from_a_deb_in_the_repo(tmp_path: Path) -> None:
    repo = _repo_with_debs(tmp_path, f'<package name="{TEST_PACKAGE}" deb="{_deb("1.0")}"/>',
                           "1.0")
    root = _root(tmp_path)

    report = converge_root(repo, root)

    assert change(report, f"package:{TEST_PACKAGE}").summary == f"install {TEST_PACKAGE} 1.0"
    assert report.exit_code == EXIT_CHANGES
    assert (root / TEST_FILE.lstrip("/")).read_text() == f"{TEST_PACKAGE} 1.0\n"


def test_installed_package_is_in_sync(tmp_path: Path) -> None:
    repo = _repo_with_debs(tmp_path, f'<package name="{TEST_PACKAGE}" deb="{_deb("1.0")}"/>',
                           "1.0")
    root = _root(tmp_path)
    converge_root(repo, root)

    report = converge_root(repo, root)

    assert report.exit_code == EXIT_IN_SYNC
    assert report.actions[0].status == "in-sync"


def test_version_glob_accepts_any_matching_installed_version(tmp_path: Path) -> None:
    body = f'<package name="{TEST_PACKAGE}" version="1.*" deb="{_deb("1.2")}"/>'
    repo = _repo_with_debs(tmp_path, body, "1.2", "2.0")
    root = _root(tmp_path)
    converge_root(repo, root)

    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC
    repo.set_class(body.replace("1.*", "2.*").replace("1.2", "2.0"))
    upgrade = converge_root(repo, root)

    assert change(upgrade, f"package:{TEST_PACKAGE}").summary == \
        f"change {TEST_PACKAGE} 1.2 → 2.*"
    assert (root / TEST_FILE.lstrip("/")).read_text() == f"{TEST_PACKAGE} 2.0\n"


def test_package_absent_is_removed(tmp_path: Path) -> None:
    repo = _repo_with_debs(tmp_path, f'<package name="{TEST_PACKAGE}" deb="{_deb("1.0")}"/>',
                           "1.0")
    root = _root(tmp_path)
    converge_root(repo, root)
    repo.set_class(f'<package name="{TEST_PACKAGE}" ensure="absent"/>')

    report = converge_root(repo, root)

    assert change(report, f"package:{TEST_PACKAGE}").summary == f"remove {TEST_PACKAGE} 1.0"
    assert not (root / TEST_FILE.lstrip("/")).exists()


def test_package_from_the_archives_is_held_under_another_root(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<package name="nginx"/>')
    root = _root(tmp_path)

    report = converge_root(repo, root)

    held = change(report, "package:nginx")
    assert (held.summary, held.status) == ("install nginx", "held")
    assert "apt-get installs only on the running system" in (held.detail or "")
    assert report.exit_code == EXIT_HELD


def test_audit_of_a_deb_package_writes_nothing(tmp_path: Path) -> None:
    repo = _repo_with_debs(tmp_path, f'<package name="{TEST_PACKAGE}" deb="{_deb("1.0")}"/>',
                           "1.0")
    root = _root(tmp_path)
    before = tree_state(root)

    report = converge_root(repo, root, "audit")

    assert change(report, f"package:{TEST_PACKAGE}").status == "pending"
    assert tree_state(root) == before


def test_the_repo_deb_reaches_dpkg_as_a_scratch_file_of_the_system(tmp_path: Path) -> None:
    repo = _repo_with_debs(tmp_path, f'<package name="{TEST_PACKAGE}" deb="{_deb("1.0")}"/>',
                           "1.0")
    root = _root(tmp_path)
    calls: list[str] = []

    converge(desired(repo), LoggingSystem(LocalSystem(str(root)), calls.append),
             StateDir.under(root), "change")

    scratch = [c for c in calls if c.startswith(f"scratch_file {TEST_PACKAGE}_1.0_all.deb")]
    assert len(scratch) == 2  # read its version while planning, install it while applying
    for call in scratch:
        found = re.search(r" -> (/\S+) ", call)
        assert found is not None, call
        host_path = Path(found.group(1))
        assert not host_path.is_relative_to(root)
        assert not host_path.parent.exists()  # the private directory went with the file
