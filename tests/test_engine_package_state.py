"""What reconciler remembers of packages and holds them to, with real dpkg and apt-mark
under a temporary root: holds, and packages declared before and no longer (orphans)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine_support import ConfigRepo, applied_json, change, converge_root, make_repo
from pkg_debs import TEST_FILE, TEST_PACKAGE, build_deb, make_dpkg_root

from reconciler.record.report import EXIT_HELD, EXIT_IN_SYNC

DEB = f"pkgs/{TEST_PACKAGE}_1.0_all.deb"
DECLARED = f'<package name="{TEST_PACKAGE}" deb="{DEB}"/>'


def _setup(tmp_path: Path, body: str) -> tuple[ConfigRepo, Path]:
    repo = make_repo(tmp_path, body)
    work = tmp_path / "debs"
    work.mkdir()
    repo.write(f"templates/{DEB}", build_deb(work, "1.0").read_bytes())
    root = tmp_path / "root"
    make_dpkg_root(root)
    return repo, root


def _status(root: Path) -> str:
    return subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                           "-f=${db:Status-Abbrev}", TEST_PACKAGE],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_an_installed_package_is_remembered_as_declared(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, DECLARED)

    converge_root(repo, root)

    records = applied_json(root)["paths"]
    assert records[f"package:{TEST_PACKAGE}"] == {  # type: ignore[index]
        "type": "package", "action": f"package:{TEST_PACKAGE}"}


def test_hold_marks_the_package_held_after_installing_it(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, DECLARED.replace("/>", ' hold="true"/>'))

    report = converge_root(repo, root)

    assert [c.op for c in report.actions[0].changes] == ["install", "hold"]
    assert _status(root) == "hi"
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_hold_false_releases_a_held_package(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, DECLARED.replace("/>", ' hold="true"/>'))
    converge_root(repo, root)
    repo.set_class(DECLARED.replace("/>", ' hold="false"/>'))

    report = converge_root(repo, root)

    assert change(report, f"package:{TEST_PACKAGE}").summary == f"unhold {TEST_PACKAGE}"
    assert _status(root) == "ii"


def test_a_package_no_longer_declared_is_an_orphan_kept_without_prune(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, DECLARED)
    converge_root(repo, root)
    repo.set_class('<directory path="/srv"/>')

    report = converge_root(repo, root)

    assert [(o.op, o.status, o.severity, o.detail) for o in report.orphans] == [
        ("orphan-remove-package", "held", "restart", "orphan; removed only with policy prune=true")]
    assert report.exit_code & EXIT_HELD
    assert (root / TEST_FILE.lstrip("/")).exists()


def test_an_orphan_package_is_removed_with_prune_within_the_ceiling(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, DECLARED)
    converge_root(repo, root)
    repo.set_class('<directory path="/srv"/>')
    repo.set_fleet(defaults='max-severity="reload" prune="true"')

    held = converge_root(repo, root)
    repo.set_fleet(defaults='max-severity="restart" prune="true"')
    removed = converge_root(repo, root)

    assert [(o.status, o.detail) for o in held.orphans] == [
        ("held", "severity restart is above the ceiling reload")]
    assert [o.status for o in removed.orphans] == ["applied"]
    assert not (root / TEST_FILE.lstrip("/")).exists()
    assert f"package:{TEST_PACKAGE}" not in applied_json(root)["paths"]  # type: ignore[operator]
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC
