"""A quiet poll of the config remote: one ref asked for, no pack unless the followed branch
moved, the cache's fsck and housekeeping once a period (at each node's own offset)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitutil_repo import Origin, free_port, git, git_daemon

from reconciler.source.cache import CHECKED, RevisionNotFound, SourceCache, spread
from reconciler.statedir import StateDir

pytestmark = pytest.mark.usefixtures("isolated_git")
DAY = 86400.0


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    repo = Origin(tmp_path / "remote")
    repo.commit({"fleet.xml": "<fleet/>\n"}, "first")
    return repo


def cache_at(tmp_path: Path, url: str) -> SourceCache:
    return SourceCache(StateDir(tmp_path / "state").source_cache, url, timeout=10)


def push_branch(origin: Origin, branch: str, files: dict[str, str]) -> str:
    """A merge-request branch with its own commit, pushed; main stays where it was."""
    git(origin.work, "checkout", "--quiet", "-b", branch)
    sha = origin.commit(files, f"work on {branch}", push=False)
    git(origin.work, "push", "--quiet", "origin", branch)
    git(origin.work, "checkout", "--quiet", "main")
    return sha


def has_object(cache: SourceCache, sha: str) -> bool:
    return cache.git.run("cat-file", "-e", sha).ok


def packets(trace: Path) -> list[str]:
    return trace.read_text().splitlines() if trace.exists() else []


def test_a_pushed_merge_request_branch_is_never_downloaded(
    origin: Origin, tmp_path: Path
) -> None:
    with git_daemon(origin.bare.parent) as port:
        cache = cache_at(tmp_path, f"git://127.0.0.1:{port}/{origin.bare.name}")
        cache.fetch("main")
        merge_request = push_branch(origin, "mr-7", {"templates/big.j2": "x" * 100_000})
        cache.fetch("main")
        newer = origin.commit({"fleet.xml": "<fleet domain='sa'/>\n"}, "second")
        cache.fetch("main")
    assert not has_object(cache, merge_request)
    assert cache.resolve("refs/heads/mr-7") is None
    assert cache.choose(branch="main") == newer


def test_a_quiet_poll_is_one_ref_advertised_and_no_pack(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(20):
        push_branch(origin, f"mr-{number}", {f"file-{number}": "x\n"})
    trace = tmp_path / "packets"
    with git_daemon(origin.bare.parent) as port:
        cache = cache_at(tmp_path, f"git://127.0.0.1:{port}/{origin.bare.name}")
        cache.fetch("main")
        monkeypatch.setenv("GIT_TRACE_PACKET", str(trace))
        cache.fetch("main")
    sent = [line for line in packets(trace) if "fetch>" in line]
    advertised = [line.split()[-1] for line in packets(trace)
                  if "fetch<" in line and " refs/" in line]
    assert any("command=ls-refs" in line for line in sent)
    assert not any("command=fetch" in line for line in sent), "no pack asked for"
    assert advertised == ["refs/heads/main"]


def test_a_branch_deleted_on_the_remote_is_gone_from_the_cache(
    origin: Origin, tmp_path: Path
) -> None:
    push_branch(origin, "stable", {"b": "2"})
    cache = cache_at(tmp_path, origin.url)
    cache.fetch("stable")
    assert cache.choose(branch="stable")
    git(origin.bare, "branch", "-D", "stable")
    cache.fetch("stable")
    with pytest.raises(RevisionNotFound, match="branch 'stable' does not exist"):
        cache.choose(branch="stable")


def test_a_new_cache_is_due_for_its_check_and_not_again_in_the_same_period(
    origin: Origin, tmp_path: Path
) -> None:
    cache = cache_at(tmp_path, origin.url)
    cache.fetch("main")
    assert cache.check_due("node-1", now=1_000 * DAY)
    cache.ensure_healthy(fsck=True)
    checked = float((cache.path / CHECKED).read_text())
    assert not cache.check_due("node-1", now=checked)
    assert cache.check_due("node-1", now=checked + DAY)


def test_checks_are_spread_over_the_period_by_node(origin: Origin, tmp_path: Path) -> None:
    cache = cache_at(tmp_path, origin.url)
    cache.fetch("main")
    start = 1_000 * DAY
    (cache.path / CHECKED).write_text(f"{start}\n")
    hours = 24
    first_due = {}
    for node in (f"node-{number}" for number in range(200)):
        first_due[node] = next(hour for hour in range(1, hours + 1)
                               if cache.check_due(node, start + hour * 3600))
    per_hour = [list(first_due.values()).count(hour) for hour in range(1, hours + 1)]
    assert max(per_hour) <= 3 * 200 / hours


def test_skipping_the_check_leaves_a_damaged_cache_to_the_next_check(
    origin: Origin, tmp_path: Path
) -> None:
    origin.commit({"templates/a.j2": "a\n"}, "second")
    cache = cache_at(tmp_path, origin.url)
    cache.fetch("main")
    blob = git(cache.path, "rev-parse", "main:templates/a.j2")
    (cache.path / "objects" / blob[:2] / blob[2:]).unlink()
    assert cache.ensure_healthy(fsck=False) == []
    repairs = cache.ensure_healthy(fsck=True)
    assert len(repairs) == 1 and "re-cloned the cache" in repairs[0]
    assert has_object(cache, blob)


def node_picking(url: str, remote: str, mirrors: list[str]) -> str:
    return next(name for name in (f"node-{number}.sa" for number in range(1000))
                if spread(name, remote, mirrors)[0] == url)


def test_a_node_fetches_from_the_mirror_its_name_picks(origin: Origin, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "--quiet", "--mirror", str(origin.bare), str(mirror))
    mirrors = [f"file://{mirror}"]
    node = node_picking(mirrors[0], origin.url, mirrors)
    cache = SourceCache(StateDir(tmp_path / "state").source_cache, origin.url, mirrors,
                        timeout=10, spread_by=node)
    served = cache.fetch("main")
    assert (served.url, served.failures) == (mirrors[0], ())


def test_the_remote_serves_when_the_picked_mirror_is_down(
    origin: Origin, tmp_path: Path
) -> None:
    mirrors = [f"git://127.0.0.1:{free_port()}/fleet.git"]
    node = node_picking(mirrors[0], origin.url, mirrors)
    cache = SourceCache(StateDir(tmp_path / "state").source_cache, origin.url, mirrors,
                        timeout=10, spread_by=node)
    served = cache.fetch("main")
    assert served.url == origin.url
    assert [url for url, _ in served.failures] == mirrors
