"""The Debian package backend against real dpkg, real .deb files and a temporary admin directory."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pkg_debs import (
    TEST_FILE,
    TEST_PACKAGE,
    LockProbeSystem,
    LockRaceSystem,
    build_deb,
    lock_held,
    make_dpkg_root,
)

from reconciler.host.dpkg import (
    PackageError,
    PackageLockTimeout,
    compare_versions,
    install,
    newest_matching,
    query,
    read_deb,
    remove,
    version_matches,
    wait_for_lock,
)
from reconciler.system.local import LocalSystem


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test package in two versions, one whose postinst fails, and one that depends on it."""
    workdir = tmp_path_factory.mktemp("debs")
    broken = workdir / "broken"
    broken.mkdir()
    return {
        "1.0-1": build_deb(workdir, "1.0-1"),
        "2.0-1": build_deb(workdir, "2.0-1"),
        "broken": build_deb(broken, "3.0-1", postinst="#!/bin/sh\nexit 0\n"),
        "dependent": build_deb(
            workdir, "1.0", name="reconciler-test-dependent", depends=TEST_PACKAGE
        ),
    }


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    make_dpkg_root(root)
    return root


@pytest.fixture
def system(node_root: Path) -> LocalSystem:
    return LocalSystem(str(node_root))


def test_install_from_deb_lands_under_root_and_not_on_host(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    install(system, TEST_PACKAGE, None, str(debs["1.0-1"]))

    found = query(system, TEST_PACKAGE)
    assert found is not None
    assert (found.name, found.version, found.installed) == (TEST_PACKAGE, "1.0-1", True)
    assert (node_root / TEST_FILE.lstrip("/")).read_text() == f"{TEST_PACKAGE} 1.0-1\n"
    assert not os.path.lexists(TEST_FILE)
    host = subprocess.run(["dpkg-query", "-W", TEST_PACKAGE], capture_output=True, text=True)
    assert host.returncode != 0


def test_upgrade_to_newer_deb_replaces_version_and_files(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    install(system, TEST_PACKAGE, "1.0-1", str(debs["1.0-1"]))

    install(system, TEST_PACKAGE, "2.0-1", str(debs["2.0-1"]))

    found = query(system, TEST_PACKAGE)
    assert found is not None and found.version == "2.0-1" and found.installed
    assert (node_root / TEST_FILE.lstrip("/")).read_text() == f"{TEST_PACKAGE} 2.0-1\n"


def test_deb_matching_version_glob_is_installed(system: LocalSystem, debs: dict[str, Path]) -> None:
    install(system, TEST_PACKAGE, "2.*", str(debs["2.0-1"]))

    found = query(system, TEST_PACKAGE)
    assert found is not None and version_matches(found.version, "2.*")


def test_deb_of_another_version_than_wanted_is_refused_before_dpkg_runs(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    with pytest.raises(PackageError, match=r"holds version 1\.0-1, which does not match 2\.\*"):
        install(system, TEST_PACKAGE, "2.*", str(debs["1.0-1"]))

    assert query(system, TEST_PACKAGE) is None
    assert not (node_root / "var/lib/dpkg/lock").exists()


def test_read_deb_reports_name_and_version_without_installing(
    system: LocalSystem, debs: dict[str, Path]
) -> None:
    assert read_deb(system, str(debs["2.0-1"])) == (TEST_PACKAGE, "2.0-1")
    assert query(system, TEST_PACKAGE) is None


def test_deb_of_another_package_is_refused(system: LocalSystem, debs: dict[str, Path]) -> None:
    with pytest.raises(PackageError, match="holds package 'reconciler-test-dependent'"):
        install(system, TEST_PACKAGE, None, str(debs["dependent"]))


def test_file_that_is_not_a_deb_is_refused(system: LocalSystem, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.deb"
    bogus.write_text("not an archive\n")

    with pytest.raises(PackageError, match=r"cannot read .* as a \.deb") as raised:
        install(system, TEST_PACKAGE, None, str(bogus))
    assert raised.value.package == TEST_PACKAGE
    assert raised.value.stderr_tail


def test_failed_postinst_leaves_package_half_configured_not_installed(
    system: LocalSystem, debs: dict[str, Path]
) -> None:
    # The root has no /bin/sh, so dpkg cannot run the postinst chrooted into it.
    with pytest.raises(PackageError, match="install failed: dpkg exited 1") as raised:
        install(system, TEST_PACKAGE, None, str(debs["broken"]))
    assert "post-installation script" in raised.value.stderr_tail

    found = query(system, TEST_PACKAGE)
    assert found is not None
    assert (found.version, found.status, found.installed) == ("3.0-1", "iF", False)
    assert found.state == "half-configured"


def test_reinstalling_half_configured_package_from_good_deb_completes_it(
    system: LocalSystem, debs: dict[str, Path]
) -> None:
    with pytest.raises(PackageError):
        install(system, TEST_PACKAGE, None, str(debs["broken"]))

    install(system, TEST_PACKAGE, "2.0-1", str(debs["2.0-1"]), reinstall=True)

    found = query(system, TEST_PACKAGE)
    assert found is not None and found.installed and found.version == "2.0-1"


def test_remove_deletes_files_and_query_reports_nothing(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    install(system, TEST_PACKAGE, None, str(debs["1.0-1"]))

    remove(system, TEST_PACKAGE)

    assert query(system, TEST_PACKAGE) is None
    assert not (node_root / TEST_FILE.lstrip("/")).exists()


def test_remove_refuses_when_an_installed_package_depends_on_it(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    install(system, TEST_PACKAGE, None, str(debs["1.0-1"]))
    install(system, "reconciler-test-dependent", None, str(debs["dependent"]))

    with pytest.raises(PackageError, match="remove failed") as raised:
        remove(system, TEST_PACKAGE)

    assert "reconciler-test-dependent depends on" in raised.value.stderr_tail
    found = query(system, TEST_PACKAGE)
    assert found is not None and found.installed


def test_query_of_unknown_package_reports_nothing(system: LocalSystem) -> None:
    assert query(system, "reconciler-never-installed") is None


def test_query_without_admin_directory_reports_nothing(tmp_path: Path) -> None:
    assert query(LocalSystem(str(tmp_path)), TEST_PACKAGE) is None


def test_query_of_host_package_uses_host_database() -> None:
    found = query(LocalSystem("/"), "dpkg")

    assert found is not None and found.installed
    assert compare_versions(found.version, "1.0") > 0


@pytest.mark.parametrize("name", ["-oAPT::Get::Foo=1", "nginx*", "Nginx", "a b", ""])
def test_invalid_package_name_is_refused_before_anything_runs(
    system: LocalSystem, name: str
) -> None:
    with pytest.raises(PackageError, match="not a valid Debian package name"):
        query(system, name)


def test_install_waits_for_frontend_lock_then_succeeds(
    node_root: Path, debs: dict[str, Path]
) -> None:
    system = LockProbeSystem(str(node_root))
    with lock_held(node_root / "var/lib/dpkg/lock-frontend") as holder, \
            ThreadPoolExecutor(1) as pool:
        installing = pool.submit(install, system, TEST_PACKAGE, None, str(debs["1.0-1"]),
                                 lock_wait=60)
        assert system.waiting.wait(timeout=30), "install never found the lock held"
        assert not installing.done()
        assert query(LocalSystem(str(node_root)), TEST_PACKAGE) is None
        holder.release()
        installing.result(timeout=60)

    found = query(system, TEST_PACKAGE)
    assert found is not None and found.installed


def test_install_retries_once_when_dpkg_finds_the_lock_taken_after_the_wait(
    node_root: Path, debs: dict[str, Path]
) -> None:
    racing = LockRaceSystem(str(node_root))
    try:
        install(racing, TEST_PACKAGE, None, str(debs["1.0-1"]), lock_wait=30)
    finally:
        racing.close()

    assert (len(racing.holders), racing.attempts) == (1, 2)
    found = query(LocalSystem(str(node_root)), TEST_PACKAGE)
    assert found is not None and found.installed


def test_install_gives_up_when_lock_is_held_too_long(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    lock = node_root / "var/lib/dpkg/lock"
    with lock_held(lock) as holder, pytest.raises(PackageLockTimeout) as raised:
        install(system, TEST_PACKAGE, None, str(debs["1.0-1"]), lock_wait=0.3)

    assert f"{lock} is still held by process {holder.pid} after 0.3s" in str(raised.value)
    assert query(system, TEST_PACKAGE) is None


def test_lock_wait_refuses_a_symlinked_dpkg_directory_instead_of_following_it(
    system: LocalSystem, node_root: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (node_root / "var/lib/dpkg").rename(elsewhere)
    (node_root / "var/lib/dpkg").symlink_to(elsewhere)
    with lock_held(elsewhere / "lock"), pytest.raises(
        PackageError, match=r"cannot open the dpkg lock .*symlink"
    ):
        wait_for_lock(system, TEST_PACKAGE, lock_wait=30)


def test_remove_gives_up_when_frontend_lock_is_held_too_long(
    system: LocalSystem, node_root: Path, debs: dict[str, Path]
) -> None:
    install(system, TEST_PACKAGE, None, str(debs["1.0-1"]))

    with (
        lock_held(node_root / "var/lib/dpkg/lock-frontend"),
        pytest.raises(PackageLockTimeout, match="never killed"),
    ):
        remove(system, TEST_PACKAGE, lock_wait=0.2)

    found = query(system, TEST_PACKAGE)
    assert found is not None and found.installed


def test_apt_install_into_another_root_is_refused_with_advice(system: LocalSystem) -> None:
    with pytest.raises(PackageError, match=r"cannot install from the archives into root .*\.deb"):
        install(system, "nginx", "1.22.*")


def test_apt_install_of_unknown_package_reports_apt_error() -> None:
    with pytest.raises(PackageError, match="install failed: apt-get exited") as raised:
        install(LocalSystem("/"), "reconciler-no-such-package", lock_wait=30)

    assert "reconciler-no-such-package" in raised.value.stderr_tail


def test_apt_version_glob_without_matching_candidate_is_refused() -> None:
    with pytest.raises(PackageError, match=r"no version matching '9\.\*' in the archives"):
        install(LocalSystem("/"), "reconciler-no-such-package", "9.*")


def test_version_matches_exact_glob_and_any() -> None:
    assert version_matches("1.22.1-9", None)
    assert version_matches("1.22.1-9", "1.22.*")
    assert version_matches("1.22.1-9", "1.22.1-9")
    assert version_matches("0:1.22.1-9", "1.22.1-9")
    assert not version_matches("1.23.0-1", "1.22.*")
    assert not version_matches("1.22.1-9", "1.22.1")


def test_newest_matching_uses_dpkg_ordering_not_string_ordering() -> None:
    candidates = ["1.22.9-1", "1.22.10-1", "1.22.10-1~bpo1", "1.23.0-1"]

    assert newest_matching(candidates, "1.22.*") == "1.22.10-1"
    assert newest_matching(candidates, "2.*") is None


def test_compare_versions_agrees_with_dpkg() -> None:
    pairs = [
        ("1.0", "1.0-0"),
        ("1.0~rc1", "1.0"),
        ("1:0.1", "2.0"),
        ("1.22.1-9", "1.22.10-1"),
        ("1.0a", "1.0+"),
        ("1.0", "1.0.0"),
        ("1.0-1~bpo11+1", "1.0-1"),
        ("1.01", "1.1"),
        ("2.0-1.1", "2.0-1a"),
        ("7.4p1", "7.4.1"),
    ]
    for a, b in pairs:
        ours = compare_versions(a, b)
        for relation, holds in (("lt", ours < 0), ("eq", ours == 0), ("gt", ours > 0)):
            dpkg = subprocess.run(["dpkg", "--compare-versions", a, relation, b])
            assert (dpkg.returncode == 0) == holds, (a, relation, b)
