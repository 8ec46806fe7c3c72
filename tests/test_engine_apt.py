"""APT source actions with the real apt-get, against a signed file:// archive made in the
test, under a temporary root (apt's own root options; --host-commands lets it fetch)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from apt_archive import Archive, build_archive, signing_key
from engine_support import ConfigRepo, action, converge_root, make_repo, tree_state
from pkg_debs import TEST_PACKAGE, make_dpkg_root

from reconciler.record.report import EXIT_IN_SYNC, RunReport

LISTS = "var/lib/apt/lists"


def _source(archive: Archive, extra: str = "") -> str:
    return (f'<apt-source name="test" uris="{archive.uri}" suites="./" key="apt/test.asc">'
            '<pin packages="reconciler-*" priority="990"/></apt-source>' + extra)


def _setup(tmp_path: Path, extra: str = "", key: str | None = None) -> tuple[ConfigRepo, Path]:
    gnupg = signing_key(tmp_path)
    archive = build_archive(tmp_path, {TEST_PACKAGE: "1.0"}, gnupg)
    repo = make_repo(tmp_path, _source(archive, extra),
                     templates={"apt/test.asc": key or archive.public_key})
    root = tmp_path / "root"
    make_dpkg_root(root)
    return repo, root


def _updates(report: RunReport) -> list[tuple[str, str, str]]:
    return [(a.id, c.summary, c.status) for a in report.actions for c in a.changes
            if c.op == "apt-update"]


def _lists(root: Path) -> list[str]:
    folder = root / LISTS
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _policy(root: Path) -> str:
    return subprocess.run(
        ["apt-cache", "-o", f"Dir={root}/", "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
         "policy", TEST_PACKAGE], capture_output=True, text=True, check=True).stdout


def test_a_new_source_is_fetched_once_verified_with_its_keyring_and_pinned(
        tmp_path: Path) -> None:
    repo, root = _setup(tmp_path)

    first = converge_root(repo, root, host_commands=True)
    second = converge_root(repo, root, host_commands=True)

    assert _updates(first) == [("apt-source:test", "apt-get update (sources changed: "
                                "apt-source:test)", "applied")]
    assert any(name.endswith("_InRelease") for name in _lists(root)), _lists(root)
    assert "1.0 990" in _policy(root), "the pin of the source's preferences file applies"
    assert (second.exit_code, _updates(second)) == (EXIT_IN_SYNC, [])


def test_one_update_serves_a_changed_source_and_a_package_missing_from_the_lists(
        tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, f'<package name="{TEST_PACKAGE}"/>')

    report = converge_root(repo, root, host_commands=True)

    assert _updates(report) == [("apt-source:test", "apt-get update (sources changed: "
                                 f"apt-source:test; not in the package lists: {TEST_PACKAGE})",
                                 "applied")]


def test_a_package_missing_from_the_lists_alone_asks_for_an_update(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path, f'<package name="{TEST_PACKAGE}"/>')
    converge_root(repo, root, host_commands=True)
    for name in _lists(root):
        (root / LISTS / name).unlink()

    report = converge_root(repo, root, host_commands=True)

    assert _updates(report) == [("apt-source:test", "apt-get update (not in the package "
                                 f"lists: {TEST_PACKAGE})", "applied")]
    assert "Candidate: 1.0" in _policy(root)
    install = action(report, f"package:{TEST_PACKAGE}").changes
    assert [(c.op, c.status) for c in install] == [("install", "held")]  # apt under a root


def test_a_source_signed_by_another_key_fails_the_update_with_apts_words(
        tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    stranger = build_archive(other, {}, signing_key(other, "Stranger"))
    repo, root = _setup(tmp_path, key=stranger.public_key)

    report = converge_root(repo, root, host_commands=True)

    source = action(report, "apt-source:test")
    assert source.status == "failed"
    failed = next(c for c in source.changes if c.op == "apt-update")
    assert failed.status == "failed"
    assert "apt-get update" in (failed.detail or "")
    assert "NO_PUBKEY" in (failed.detail or ""), failed.detail


def test_audit_says_an_update_is_due_and_fetches_nothing(tmp_path: Path) -> None:
    repo, root = _setup(tmp_path)
    before = tree_state(root)

    report = converge_root(repo, root, "audit", host_commands=True)

    assert [status for _, _, status in _updates(report)] == ["pending"]
    assert tree_state(root) == before
