"""The tip file: the server's post-receive hook publishes the followed branch's tip, a
real nginx serves it with its own ETags and 304s, and a node with `tip-url` skips git
while it names the commit the node enforces. A moved, missing, garbage, lying or stale
tip file never makes the node apply anything git did not give it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cycle_support import Node
from gitutil_repo import free_port, git
from nginx_support import Nginx, serving_tips

from reconciler.source import stamps

pytestmark = pytest.mark.usefixtures("isolated_git")
TIP = "config.git/reconciler-tip"


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def served(node: Node) -> Iterator[Nginx]:
    """nginx serving the origin's directory, the post-receive hook in the origin."""
    with serving_tips(node.origin.bare, node.tmp / "nginx") as nginx:
        node.write_config(**{"tip-url": nginx.url(TIP)})
        yield nginx


def dead_remote(node: Node, nginx: Nginx) -> None:
    """agent.toml as before, but with a git remote nothing answers on."""
    node.write_config(f"git://127.0.0.1:{free_port()}/config.git", **{"tip-url": nginx.url(TIP)})


def git_is_due(node: Node) -> None:
    """The node last asked git a period ago (as if an hour went by)."""
    (node.state / "source.git" / stamps.FETCHED).write_text("0\n")


def test_a_node_whose_tip_file_names_its_commit_skips_git(node: Node, served: Nginx) -> None:
    commit = node.push_base()
    assert node.run().result == "changed"
    assert node.run().result == "in-sync"  # and the new cache's first check, with git
    dead_remote(node, served)

    first, second = node.run(), node.run()

    for report in (first, second):
        assert (report.result, report.config_commit) == ("in-sync", commit)
        assert report.source is not None
        assert (report.source.remote, report.source.stale) == (served.url(TIP), None)
    assert served.answers() == [f"200 /{TIP}", f"304 /{TIP}"], "nginx said 304 itself"


def test_a_moved_tip_is_fetched_with_git(node: Node, served: Nginx) -> None:
    node.push_base()
    node.run()
    node.run()
    newer = node.push({"templates/web/x.j2": "moved on\n"}, "newer")

    report = node.run()

    assert (report.result, report.config_commit) == ("changed", newer)
    assert (node.root / "etc/x").read_text() == "moved on\n"
    assert report.source is not None and report.source.remote == node.origin.url
    assert served.answers()[-1] == f"200 /{TIP}", "the hook published the new tip"


@pytest.mark.parametrize("content", [None, b"garbage\n", b"\xff" * 40,
                                     b"0" * 40 + b" refs/heads/other\n"],
                         ids=["missing", "garbage", "binary", "no-line-for-main"])
def test_a_tip_file_that_does_not_tell_sends_the_run_to_git(
    node: Node, served: Nginx, content: bytes | None
) -> None:
    node.push_base()
    node.run()
    (hook := node.origin.bare / "hooks" / "post-receive").unlink()
    newer = node.push({"templates/web/x.j2": "moved on\n"}, "newer")
    published = node.origin.bare / "reconciler-tip"
    if content is None:
        published.unlink()
    else:
        published.write_bytes(content)

    report = node.run()

    assert (report.result, report.config_commit) == ("changed", newer)
    assert not hook.exists()


def test_a_lying_tip_file_never_makes_the_node_apply_what_git_did_not_give(
    node: Node, served: Nginx
) -> None:
    base = node.push_base()
    node.run()
    git(node.origin.work, "checkout", "--quiet", "-b", "mr-1")
    unreviewed = node.origin.commit({"templates/web/x.j2": "unreviewed\n"}, "mr", push=False)
    git(node.origin.work, "push", "--quiet", "origin", "mr-1")
    (node.origin.bare / "reconciler-tip").write_text(f"{unreviewed} refs/heads/main\n")

    report = node.run()

    assert (report.result, report.config_commit) == ("in-sync", base)
    assert report.source is not None and report.source.tip == base
    assert "unreviewed" not in (node.root / "etc/x").read_text()


def test_a_stale_tip_file_delays_a_change_only_until_git_is_due(
    node: Node, served: Nginx
) -> None:
    base = node.push_base()
    node.run()
    node.run()
    published = node.origin.bare / "reconciler-tip"
    stale = published.read_bytes()
    newer = node.push({"templates/web/x.j2": "moved on\n"}, "newer")
    published.write_bytes(stale)  # the hook did not run (pushed some other way)

    held = node.run()
    git_is_due(node)
    caught_up = node.run()

    assert (held.result, held.config_commit) == ("in-sync", base)
    assert (caught_up.result, caught_up.config_commit) == ("changed", newer)


def test_the_hook_rewrites_the_tip_file_only_when_the_followed_branch_moves(
    node: Node, served: Nginx
) -> None:
    base = node.push_base()
    published = node.origin.bare / "reconciler-tip"
    assert published.read_text() == f"{base} refs/heads/main\n"
    before = os.stat(published)
    git(node.origin.work, "push", "--quiet", "origin", "main:refs/heads/mr-2")

    assert os.stat(published).st_ino == before.st_ino, "an open branch changes nothing"
    newer = node.push({"templates/web/x.j2": "moved on\n"}, "newer")
    after = os.stat(published)
    assert published.read_text() == f"{newer} refs/heads/main\n"
    assert int(after.st_mtime) > int(before.st_mtime), "a new ETag, even within one second"
    assert oct(after.st_mode & 0o777) == "0o644"


def test_a_tip_url_that_is_not_http_is_refused(node: Node) -> None:
    node.write_config(**{"tip-url": "file:///srv/git/fleet.git/reconciler-tip"})

    done = node.cli("run")

    assert done.code != 0
    assert "tip-url must be an http:// or https:// URL" in done.err
    assert not node.root.exists()
