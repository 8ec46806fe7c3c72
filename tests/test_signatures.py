"""Signature policy against real git: SSH and OpenPGP signed commits, head and range."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gitutil_repo import (
    Origin,
    allowed_signers,
    git,
    gpg,
    gpg_home,
    gpg_new_key,
    gpg_stop_agent,
    ssh_key,
    ssh_signing,
)

from reconciler.errors import Refused
from reconciler.git import Git
from reconciler.source.cache import SourceCache
from reconciler.source.signatures import SignatureRefused, verify
from reconciler.statedir import StateDir

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    repo = Origin(tmp_path / "remote")
    repo.commit({"fleet.xml": "<fleet/>\n"}, "first")
    return repo


@pytest.fixture
def cache(tmp_path: Path, origin: Origin) -> SourceCache:
    """The node's cache of `origin`, not fetched yet (a test commits first)."""
    return SourceCache(StateDir(tmp_path / "state").source_cache, origin.url, timeout=10)


def fetched(cache: SourceCache) -> SourceCache:
    cache.fetch()
    return cache


@pytest.fixture
def ssh_keys(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    return {"alice": ssh_key(keys, "alice"), "mallory": ssh_key(keys, "mallory")}


@pytest.fixture
def signers_file(tmp_path: Path, ssh_keys: dict[str, Path]) -> Path:
    return allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": ssh_keys["alice"]})


def test_ssh_signed_tip_passes_head_and_names_the_signer(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    tip = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    info = verify(fetched(cache), "head", tip, None, str(signers_file), None)
    assert info is not None
    assert (info.commit, info.kind, info.signer, info.status) == (
        tip,
        "ssh",
        "alice@example.org",
        "G",
    )
    assert info.key.startswith("SHA256:")


def test_unsigned_tip_fails_head(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    tip = origin.commit({"c": "3"}, "unsigned on top")
    fetched(cache)
    with pytest.raises(SignatureRefused) as caught:
        verify(cache, "head", tip, None, str(signers_file), None)
    assert f"commit {tip}: not signed" in str(caught.value)
    assert isinstance(caught.value, Refused)


def test_unsigned_commit_below_a_signed_tip_fails_range_but_passes_head(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    alice = ssh_signing(ssh_keys["alice"])
    applied = origin.commit({"b": "1"}, "applied", signing=alice)
    sneaked = origin.commit({"b": "2"}, "unsigned in the middle")
    tip = origin.commit({"b": "3"}, "signed tip", signing=alice)
    fetched(cache)
    head = verify(cache, "head", tip, applied, str(signers_file), None)
    assert head is not None and (head.commit, head.signer) == (tip, "alice@example.org")
    with pytest.raises(SignatureRefused, match=f"commit {sneaked}: not signed"):
        verify(cache, "range", tip, applied, str(signers_file), None)


def test_range_with_every_commit_signed_passes(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    alice = ssh_signing(ssh_keys["alice"])
    applied = origin.commit({"b": "1"}, "applied", signing=alice)
    origin.commit({"b": "2"}, "signed", signing=alice)
    tip = origin.commit({"b": "3"}, "signed tip", signing=alice)
    info = verify(fetched(cache), "range", tip, applied, str(signers_file), None)
    assert info is not None and info.commit == tip


def test_range_on_a_first_run_checks_only_the_tip(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    tip = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    info = verify(fetched(cache), "range", tip, None, str(signers_file), None)
    assert info is not None and info.commit == tip


def test_range_back_to_an_older_commit_checks_that_commit(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    unsigned = git(origin.work, "rev-parse", "HEAD")
    applied = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    with pytest.raises(SignatureRefused, match="not signed"):
        verify(fetched(cache), "range", unsigned, applied, str(signers_file), None)


def test_ssh_key_missing_from_allowed_signers_is_refused(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    tip = origin.commit({"b": "2"}, "by mallory", signing=ssh_signing(ssh_keys["mallory"]))
    with pytest.raises(SignatureRefused, match="not in the allowed-signers file"):
        verify(fetched(cache), "head", tip, None, str(signers_file), None)


def test_ssh_signature_without_an_allowed_signers_file_is_refused(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path]
) -> None:
    tip = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    with pytest.raises(SignatureRefused, match="no allowed-signers file is configured"):
        verify(fetched(cache), "head", tip, None, None, None)


def test_policy_none_refuses_nothing_but_names_a_good_signer(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    signed = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    unsigned = origin.commit({"b": "3"}, "unsigned")
    fetched(cache)
    assert verify(cache, "none", unsigned, signed, str(signers_file), None) is None
    info = verify(cache, "none", signed, None, str(signers_file), None)
    assert info is not None and info.signer == "alice@example.org"


def test_the_signature_check_reads_the_subject_the_report_names_whole(
    origin: Origin, cache: SourceCache, ssh_keys: dict[str, Path], signers_file: Path,
    tmp_path: Path,
) -> None:
    """One `git log` gives both (a run starts no other for the subject), and a subject
    that spells out a good signature's record is text, not a record."""
    first = git(origin.work, "rev-parse", "HEAD")
    unsigned = origin.commit({"b": "2"}, "unsigned")
    forged = f"tidy\x1e{unsigned}\x1fG\x1fSHA256:forged\x1f\x1falice@example.org\x1fx"
    signed = origin.commit({"b": "3"}, forged, signing=ssh_signing(ssh_keys["alice"]))
    fetched(cache)
    with pytest.raises(SignatureRefused, match=f"commit {unsigned}: not signed"):
        verify(cache, "range", signed, first, str(signers_file), None)
    cache.git = Git(tmp_path / "no-repository-here")  # a subject asked of git is None
    assert cache.subject(signed) == forged


@pytest.fixture(scope="module")
def openpgp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One OpenPGP signing key for the module (its own home: ultimately trusted)."""
    home = gpg_home(tmp_path_factory.mktemp("gpg") / "signer")
    fingerprint = gpg_new_key(home, "Release Signer <signer@example.org>")
    yield home, fingerprint
    gpg_stop_agent(home)


def gpg_signed(origin: Origin, openpgp: tuple[Path, str], files: dict[str, str | None]) -> str:
    home, fingerprint = openpgp
    return origin.commit(
        files,
        "signed with OpenPGP",
        signing=["-c", "gpg.format=openpgp", "-c", f"user.signingkey={fingerprint}"],
        env={"GNUPGHOME": str(home)},
    )


@pytest.fixture
def verify_home(tmp_path: Path, openpgp: tuple[Path, str]) -> Iterator[Path]:
    """A dedicated keyring holding the signer's public key, with no ownertrust set."""
    home = gpg_home(tmp_path / "verify-gnupg")
    gpg(home, "--import", stdin=gpg(openpgp[0], "--export", openpgp[1]))
    yield home
    gpg_stop_agent(home)


def test_openpgp_signature_from_a_trusted_key_passes(
    origin: Origin, cache: SourceCache, openpgp: tuple[Path, str]
) -> None:
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    info = verify(fetched(cache), "head", tip, None, None, str(openpgp[0]))
    assert info is not None
    assert (info.kind, info.key, info.status) == ("openpgp", openpgp[1], "G")
    assert info.signer == "Release Signer <signer@example.org>"


def test_openpgp_key_in_the_dedicated_keyring_passes_without_ownertrust(
    origin: Origin, cache: SourceCache, openpgp: tuple[Path, str], verify_home: Path
) -> None:
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    info = verify(fetched(cache), "head", tip, None, None, str(verify_home))
    assert info is not None and info.status == "U" and info.key == openpgp[1]


def test_untrusted_openpgp_key_in_the_default_keyring_is_refused(
    origin: Origin, cache: SourceCache, openpgp: tuple[Path, str], tmp_path: Path
) -> None:
    default_home = gpg_home(tmp_path / "home" / ".gnupg")
    gpg(default_home, "--import", stdin=gpg(openpgp[0], "--export", openpgp[1]))
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    try:
        with pytest.raises(SignatureRefused, match="not trusted"):
            verify(fetched(cache), "head", tip, None, None, None)
    finally:
        gpg_stop_agent(default_home)


def test_openpgp_signature_from_an_unknown_key_is_refused(
    origin: Origin, cache: SourceCache, openpgp: tuple[Path, str], tmp_path: Path
) -> None:
    empty = gpg_home(tmp_path / "empty-gnupg")
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    try:
        with pytest.raises(SignatureRefused, match="is not in the keyring"):
            verify(fetched(cache), "head", tip, None, None, str(empty))
    finally:
        gpg_stop_agent(empty)
