"""The source cache against real git: bare origins, git daemon, rewinds, broken caches."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitutil_repo import Origin, free_port, git, git_daemon

from reconciler.errors import Refused, RetryLater
from reconciler.source.cache import HistoryRewind, RevisionNotFound, SourceCache, SourceUnavailable
from reconciler.source.snapshot import open_snapshot
from reconciler.statedir import StateDir

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
    return SourceCache(StateDir(state_dir).source_cache, remote, list(mirrors), timeout=timeout)


def fetched(state_dir: Path, origin: Origin) -> SourceCache:
    cache = cache_for(state_dir, origin.url)
    cache.fetch()
    return cache


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
    assert isinstance(caught.value, RetryLater)
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
    assert "did not complete in 1 s" in str(caught.value)


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
    assert isinstance(caught.value, Refused)
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
