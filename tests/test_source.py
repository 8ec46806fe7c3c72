"""The source stage against real git: bare origins, git daemon, signed commits, broken caches."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gitutil_repo import (
    Origin,
    allowed_signers,
    free_port,
    git,
    git_daemon,
    gpg,
    gpg_home,
    gpg_new_key,
    gpg_stop_agent,
    ssh_key,
    ssh_signing,
)

from reconciler.errors import Reaction
from reconciler.source.cache import (
    HistoryRewind,
    RevisionNotFound,
    SignatureRefused,
    SourceCache,
    SourceState,
    SourceUnavailable,
    StateFileError,
    Why,
    decide,
)
from reconciler.source.snapshot import open_snapshot

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    repo = Origin(tmp_path / "remote")
    repo.commit({"fleet.xml": "<fleet/>\n"}, "first")
    return repo


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def cache_for(state_dir: Path, remote: str, *mirrors: str, timeout: float = 10) -> SourceCache:
    return SourceCache(state_dir, remote, list(mirrors), timeout=timeout)


# -- fetching ------------------------------------------------------------------------


def test_first_fetch_creates_a_bare_cache_with_the_remote_branches(
    origin: Origin, state_dir: Path
) -> None:
    cache = cache_for(state_dir, origin.url)
    served = cache.fetch()
    assert served.url == origin.url
    assert served.failures == ()
    assert git(cache.path, "rev-parse", "--is-bare-repository") == "true"
    assert cache.choose(branch="main") == git(origin.work, "rev-parse", "HEAD")
    assert not list(state_dir.glob("source.git.*"))


def test_plain_path_remote_is_fetched(origin: Origin, state_dir: Path) -> None:
    cache = cache_for(state_dir, str(origin.bare))
    assert cache.fetch().url == str(origin.bare)
    assert cache.choose(branch="main") == git(origin.work, "rev-parse", "HEAD")


def test_second_fetch_brings_the_new_tip(origin: Origin, state_dir: Path) -> None:
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    newer = origin.commit({"fleet.xml": "<fleet domain='sa'/>\n"}, "second")
    cache.fetch()
    assert cache.choose(branch="main") == newer


def test_fetch_over_git_daemon(origin: Origin, state_dir: Path) -> None:
    with git_daemon(origin.bare.parent) as port:
        url = f"git://127.0.0.1:{port}/{origin.bare.name}"
        cache = cache_for(state_dir, url)
        assert cache.fetch().url == url
    assert cache.choose(branch="main") == git(origin.work, "rev-parse", "HEAD")


def test_mirror_serves_when_the_primary_is_down(origin: Origin, state_dir: Path) -> None:
    down = f"git://127.0.0.1:{free_port()}/config.git"
    cache = cache_for(state_dir, down, origin.url)
    served = cache.fetch()
    assert served.url == origin.url
    assert [url for url, _ in served.failures] == [down]
    assert cache.choose(branch="main") == git(origin.work, "rev-parse", "HEAD")


def test_all_remotes_down_is_source_unavailable_quickly(state_dir: Path, tmp_path: Path) -> None:
    down = f"git://127.0.0.1:{free_port()}/config.git"
    missing = str(tmp_path / "no-such-repo.git")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        cache_for(state_dir, down, missing).fetch()
    assert time.monotonic() - started < 5
    assert caught.value.reaction is Reaction.RETRY
    text = str(caught.value)
    assert down in text and missing in text
    assert "fetch failed" in text
    assert not (state_dir / "source.git").exists()


def test_passwords_in_urls_never_reach_the_message(state_dir: Path) -> None:
    url = f"https://deploy:s3cret@127.0.0.1:{free_port()}/config.git"
    with pytest.raises(SourceUnavailable) as caught:
        cache_for(state_dir, url).fetch()
    assert "s3cret" not in str(caught.value)
    assert "deploy:***@127.0.0.1" in str(caught.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_remote_that_hangs_is_cut_off_at_the_timeout(state_dir: Path, silent_port: int) -> None:
    url = f"git://127.0.0.1:{silent_port}/config.git"
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        cache_for(state_dir, url, timeout=1).fetch()
    assert time.monotonic() - started < 5
    assert "did not complete in 1 secs" in str(caught.value)


def test_a_transport_helper_url_is_not_run(state_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(SourceUnavailable, match="transport helper URLs are not allowed"):
        cache_for(state_dir, f"ext::sh -c touch% {marker}").fetch()
    assert not marker.exists()


# -- choosing a commit ---------------------------------------------------------------


def test_pinned_commit_resolves_from_an_abbreviation(origin: Origin, state_dir: Path) -> None:
    first = git(origin.work, "rev-parse", "HEAD")
    origin.commit({"b": "2"}, "second")
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    assert cache.choose(commit=first[:10]) == first


def test_pinned_commit_missing_from_the_cache_is_refused(origin: Origin, state_dir: Path) -> None:
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    with pytest.raises(RevisionNotFound, match="pinned commit 0123456789ab is not in"):
        cache.choose(commit="0123456789ab")


def test_unknown_branch_is_refused(origin: Origin, state_dir: Path) -> None:
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    with pytest.raises(RevisionNotFound, match="branch 'stable' does not exist"):
        cache.choose(branch="stable")


# -- forward only --------------------------------------------------------------------


def test_descendant_and_equal_commits_move_forward(origin: Origin, state_dir: Path) -> None:
    first = git(origin.work, "rev-parse", "HEAD")
    second = origin.commit({"b": "2"}, "second")
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    assert cache.check_forward(None, second) is None
    assert cache.check_forward(first, second) is None
    assert cache.check_forward(second, second) is None


def test_force_push_is_a_history_rewind(origin: Origin, state_dir: Path) -> None:
    first = git(origin.work, "rev-parse", "HEAD")
    applied = origin.commit({"b": "2"}, "applied on the node")
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    origin.reset(first)
    rewritten = origin.commit({"c": "3"}, "rewritten", push=False)
    origin.push(force=True)
    cache.fetch()
    assert cache.choose(branch="main") == rewritten
    with pytest.raises(HistoryRewind) as caught:
        cache.check_forward(applied, rewritten)
    assert caught.value.reaction is Reaction.REFUSED
    assert f"force-push or rollback: {rewritten} is not a descendant of {applied}" in str(
        caught.value
    )
    allowed = cache.check_forward(applied, rewritten, allow_rewind=True)
    assert allowed is not None and "not a descendant" in allowed


def test_remote_going_back_is_called_an_older_commit(origin: Origin, state_dir: Path) -> None:
    first = git(origin.work, "rev-parse", "HEAD")
    applied = origin.commit({"b": "2"}, "second")
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    with pytest.raises(HistoryRewind, match="older commit"):
        cache.check_forward(applied, first)


def test_last_applied_commit_gone_from_the_repo_is_a_rewind(
    origin: Origin, state_dir: Path
) -> None:
    tip = git(origin.work, "rev-parse", "HEAD")
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    with pytest.raises(HistoryRewind, match="no longer in the repository"):
        cache.check_forward("f" * 40, tip)


# -- signatures ----------------------------------------------------------------------


@pytest.fixture
def ssh_keys(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    return {"alice": ssh_key(keys, "alice"), "mallory": ssh_key(keys, "mallory")}


@pytest.fixture
def signers_file(tmp_path: Path, ssh_keys: dict[str, Path]) -> Path:
    return allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": ssh_keys["alice"]})


def fetched(state_dir: Path, origin: Origin) -> SourceCache:
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    return cache


def test_ssh_signed_tip_passes_head_and_names_the_signer(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    tip = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    info = fetched(state_dir, origin).verify("head", tip, None, str(signers_file), None)
    assert info is not None
    assert (info.commit, info.kind, info.signer, info.status) == (
        tip,
        "ssh",
        "alice@example.org",
        "G",
    )
    assert info.key.startswith("SHA256:")


def test_unsigned_tip_fails_head(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    tip = origin.commit({"c": "3"}, "unsigned on top")
    cache = fetched(state_dir, origin)
    with pytest.raises(SignatureRefused) as caught:
        cache.verify("head", tip, None, str(signers_file), None)
    assert f"commit {tip}: not signed" in str(caught.value)
    assert caught.value.reaction is Reaction.REFUSED


def test_unsigned_commit_below_a_signed_tip_fails_range_but_passes_head(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    alice = ssh_signing(ssh_keys["alice"])
    applied = origin.commit({"b": "1"}, "applied", signing=alice)
    sneaked = origin.commit({"b": "2"}, "unsigned in the middle")
    tip = origin.commit({"b": "3"}, "signed tip", signing=alice)
    cache = fetched(state_dir, origin)
    assert cache.verify("head", tip, applied, str(signers_file), None) is not None
    with pytest.raises(SignatureRefused, match=f"commit {sneaked}: not signed"):
        cache.verify("range", tip, applied, str(signers_file), None)


def test_range_with_every_commit_signed_passes(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    alice = ssh_signing(ssh_keys["alice"])
    applied = origin.commit({"b": "1"}, "applied", signing=alice)
    origin.commit({"b": "2"}, "signed", signing=alice)
    tip = origin.commit({"b": "3"}, "signed tip", signing=alice)
    info = fetched(state_dir, origin).verify("range", tip, applied, str(signers_file), None)
    assert info is not None and info.commit == tip


def test_range_on_a_first_run_checks_only_the_tip(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    tip = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    info = fetched(state_dir, origin).verify("range", tip, None, str(signers_file), None)
    assert info is not None and info.commit == tip


def test_range_back_to_an_older_commit_checks_that_commit(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    unsigned = git(origin.work, "rev-parse", "HEAD")
    applied = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    with pytest.raises(SignatureRefused, match="not signed"):
        fetched(state_dir, origin).verify("range", unsigned, applied, str(signers_file), None)


def test_ssh_key_missing_from_allowed_signers_is_refused(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    tip = origin.commit({"b": "2"}, "by mallory", signing=ssh_signing(ssh_keys["mallory"]))
    with pytest.raises(SignatureRefused, match="not in the allowed-signers file"):
        fetched(state_dir, origin).verify("head", tip, None, str(signers_file), None)


def test_ssh_signature_without_an_allowed_signers_file_is_refused(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path]
) -> None:
    tip = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    with pytest.raises(SignatureRefused, match="no allowed-signers file is configured"):
        fetched(state_dir, origin).verify("head", tip, None, None, None)


def test_policy_none_refuses_nothing_but_names_a_good_signer(
    origin: Origin, state_dir: Path, ssh_keys: dict[str, Path], signers_file: Path
) -> None:
    signed = origin.commit({"b": "2"}, "signed", signing=ssh_signing(ssh_keys["alice"]))
    unsigned = origin.commit({"b": "3"}, "unsigned")
    cache = fetched(state_dir, origin)
    assert cache.verify("none", unsigned, signed, str(signers_file), None) is None
    info = cache.verify("none", signed, None, str(signers_file), None)
    assert info is not None and info.signer == "alice@example.org"


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
    origin: Origin, state_dir: Path, openpgp: tuple[Path, str]
) -> None:
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    info = fetched(state_dir, origin).verify("head", tip, None, None, str(openpgp[0]))
    assert info is not None
    assert (info.kind, info.key, info.status) == ("openpgp", openpgp[1], "G")
    assert info.signer == "Release Signer <signer@example.org>"


def test_openpgp_key_in_the_dedicated_keyring_passes_without_ownertrust(
    origin: Origin, state_dir: Path, openpgp: tuple[Path, str], verify_home: Path
) -> None:
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    info = fetched(state_dir, origin).verify("head", tip, None, None, str(verify_home))
    assert info is not None and info.status == "U" and info.key == openpgp[1]


def test_untrusted_openpgp_key_in_the_default_keyring_is_refused(
    origin: Origin, state_dir: Path, openpgp: tuple[Path, str], tmp_path: Path
) -> None:
    default_home = gpg_home(tmp_path / "home" / ".gnupg")
    gpg(default_home, "--import", stdin=gpg(openpgp[0], "--export", openpgp[1]))
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    try:
        with pytest.raises(SignatureRefused, match="not trusted"):
            fetched(state_dir, origin).verify("head", tip, None, None, None)
    finally:
        gpg_stop_agent(default_home)


def test_openpgp_signature_from_an_unknown_key_is_refused(
    origin: Origin, state_dir: Path, openpgp: tuple[Path, str], tmp_path: Path
) -> None:
    empty = gpg_home(tmp_path / "empty-gnupg")
    tip = gpg_signed(origin, openpgp, {"b": "2"})
    try:
        with pytest.raises(SignatureRefused, match="is not in the keyring"):
            fetched(state_dir, origin).verify("head", tip, None, None, str(empty))
    finally:
        gpg_stop_agent(empty)


# -- self-repair ---------------------------------------------------------------------


def test_stale_lock_in_the_cache_is_removed_and_fetch_works(
    origin: Origin, state_dir: Path
) -> None:
    cache = fetched(state_dir, origin)
    stale = cache.path / "packed-refs.lock"
    stale.write_text("")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = cache.path / "index.lock"
    fresh.write_text("")
    repairs = cache.ensure_healthy()
    assert not stale.exists()
    assert fresh.exists(), "a lock younger than the fetch timeout is left alone"
    assert any("packed-refs.lock" in line for line in repairs)
    newer = origin.commit({"b": "2"}, "second")
    cache.fetch()
    assert cache.choose(branch="main") == newer


def test_stale_index_lock_is_removed(origin: Origin, state_dir: Path) -> None:
    cache = fetched(state_dir, origin)
    lock = cache.path / "index.lock"
    lock.write_text("")
    assert "index.lock" in "".join(cache.ensure_healthy(min_lock_age=0))
    assert not lock.exists()


def test_healthy_cache_needs_no_repair(origin: Origin, state_dir: Path) -> None:
    cache = fetched(state_dir, origin)
    inode = cache.path.stat().st_ino
    assert cache.ensure_healthy() == []
    assert cache.path.stat().st_ino == inode


def test_cache_with_a_missing_object_is_recloned(origin: Origin, state_dir: Path) -> None:
    origin.commit({"templates/a.j2": "a\n", "templates/b.j2": "b\n"}, "second")
    cache = fetched(state_dir, origin)
    blob = git(cache.path, "rev-parse", "main:templates/a.j2")
    loose = cache.path / "objects" / blob[:2] / blob[2:]
    assert loose.exists(), "small fetches unpack to loose objects"
    loose.unlink()
    repairs = cache.ensure_healthy()
    assert len(repairs) == 1 and "re-cloned the cache" in repairs[0]
    assert "missing" in repairs[0]
    git(cache.path, "fsck", "--strict")
    assert sorted(p.name for p in state_dir.iterdir()) == ["source.git"]
    tree = open_snapshot(str(cache.path), cache.choose(branch="main"))
    assert tree.read("templates/a.j2") == b"a\n"


def test_fetch_reclones_when_the_cache_is_corrupt(origin: Origin, state_dir: Path) -> None:
    cache = fetched(state_dir, origin)
    (cache.path / "HEAD").write_text("garbage\n")
    served = cache.fetch()
    assert served.url == origin.url
    git(cache.path, "fsck")
    assert cache.choose(branch="main") == git(origin.work, "rev-parse", "HEAD")


def test_leftovers_of_an_interrupted_swap_are_removed(origin: Origin, state_dir: Path) -> None:
    cache = fetched(state_dir, origin)
    leftover = state_dir / "source.git.fresh-99999"
    (leftover / "objects").mkdir(parents=True)
    assert any("leftover" in line for line in cache.ensure_healthy())
    assert not leftover.exists()


def test_repair_without_any_remote_is_source_unavailable(origin: Origin, state_dir: Path) -> None:
    cache = fetched(state_dir, origin)
    down = cache_for(state_dir, f"git://127.0.0.1:{free_port()}/config.git")
    for loose in (cache.path / "objects").glob("??/*"):
        loose.unlink()
    with pytest.raises(SourceUnavailable):
        down.ensure_healthy()


# -- last known good -----------------------------------------------------------------

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_new_tip_is_tried() -> None:
    state = SourceState().mark_good("a" * 40, T0)
    decision = decide(state, "b" * 40)
    assert (decision.commit, decision.why) == ("b" * 40, Why.NEW_TIP)


def test_tip_equal_to_last_good_runs_again() -> None:
    state = SourceState().mark_good("a" * 40, T0)
    assert decide(state, "a" * 40).why is Why.UNCHANGED


def test_refused_tip_keeps_the_last_good_commit() -> None:
    state = SourceState().mark_good("a" * 40, T0).mark_refused("b" * 40, "bad XML", T0)
    decision = decide(state, "b" * 40)
    assert (decision.commit, decision.why) == ("a" * 40, Why.REFUSED_TIP)
    assert "bad XML" in decision.detail
    assert decide(state, "b" * 40, retry_refused=True).why is Why.NEW_TIP


def test_a_newer_tip_after_a_refusal_is_tried() -> None:
    state = SourceState().mark_good("a" * 40, T0).mark_refused("b" * 40, "bad XML", T0)
    assert decide(state, "c" * 40).commit == "c" * 40


def test_refused_tip_with_nothing_good_applies_nothing() -> None:
    state = SourceState().mark_refused("b" * 40, "unsigned", T0)
    decision = decide(state, "b" * 40)
    assert (decision.commit, decision.why) == (None, Why.NOTHING)


def test_pin_wins_over_the_tip_until_unpinned() -> None:
    state = SourceState().mark_good("b" * 40, T0).pin("a" * 40, "rollback", T0)
    assert (decide(state, "c" * 40).commit, decide(state, "c" * 40).why) == ("a" * 40, Why.PINNED)
    assert decide(state.unpin(), "c" * 40).why is Why.NEW_TIP


def test_success_forgets_the_refusal_and_sets_staleness() -> None:
    state = SourceState().mark_refused("b" * 40, "bad", T0).mark_good("c" * 40, T0)
    assert state.refused is None
    assert state.staleness(T0 + timedelta(hours=2)) == timedelta(hours=2)
    assert SourceState().staleness() is None


def test_source_state_round_trips_through_its_file(state_dir: Path) -> None:
    state_dir.mkdir()
    path = state_dir / "source-state.json"
    assert SourceState.load(path) == SourceState()
    state = SourceState().mark_good("a" * 40, T0).mark_refused("b" * 40, "bad", T0)
    state.save(path)
    assert SourceState.load(path) == state
    assert json.loads(path.read_text())["refused"]["reason"] == "bad"
    assert [p.name for p in state_dir.iterdir()] == ["source-state.json"]


def test_corrupt_source_state_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "source-state.json"
    path.write_text("{not json")
    with pytest.raises(StateFileError) as caught:
        SourceState.load(path)
    assert str(path) in str(caught.value)
    assert caught.value.reaction is Reaction.FAILED
