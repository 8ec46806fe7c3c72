"""A quiet run's question to the git remote (source/lsrefs.py): one protocol v2 ls-refs
of the followed branch, nothing else asked of the server; over a transport this does
not speak itself, git's fetch of that one ref into the node's cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitutil_repo import Origin, free_port, git, git_daemon

from reconciler.source.lsrefs import ask_git

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    repo = Origin(tmp_path / "remote")
    repo.commit({"fleet.xml": "<fleet/>\n"}, "first")
    for number in range(20):
        git(repo.work, "push", "--quiet", "origin", f"main:refs/heads/mr-{number}")
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "source.git"
    git(tmp_path, "init", "--quiet", "--bare", str(path))
    return path


def test_over_git_daemon_the_server_is_asked_one_ref_and_nothing_else(
    origin: Origin, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "server-packets"
    monkeypatch.setenv("GIT_TRACE_PACKET", str(trace))
    with git_daemon(origin.bare.parent) as port:
        monkeypatch.delenv("GIT_TRACE_PACKET")
        found = ask_git(f"git://127.0.0.1:{port}/{origin.bare.name}", "main", cache, 10)

    assert found == git(origin.work, "rev-parse", "main")
    received = [line.split("< ", 1)[1] for line in trace.read_text().splitlines()
                if "upload-pack< " in line]
    sent = [line.split("> ", 1)[1] for line in trace.read_text().splitlines()
            if "upload-pack> " in line and " refs/" in line]
    assert received == ["command=ls-refs", "0001", "ref-prefix refs/heads/main", "0000",
                        "0000"]
    assert sent == [f"{found} refs/heads/main"]
    assert not list((cache / "objects").rglob("pack-*")), "nothing fetched"


def test_over_another_transport_git_fetches_the_one_ref_into_the_cache(
    origin: Origin, cache: Path
) -> None:
    found = ask_git(origin.url, "main", cache, 10)

    assert found == git(origin.work, "rev-parse", "main")
    assert git(cache, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_a_branch_the_remote_lacks_or_a_remote_that_does_not_answer_tells_nothing(
    origin: Origin, cache: Path
) -> None:
    with git_daemon(origin.bare.parent) as port:
        missing = ask_git(f"git://127.0.0.1:{port}/{origin.bare.name}", "gone", cache, 10)
    silent = ask_git(f"git://127.0.0.1:{free_port()}/config.git", "main", cache, 10)

    assert (missing, silent, ask_git(origin.url, "gone", cache, 10)) == (None, None, None)
