"""Reading the config repo at one revision: the working tree, or a commit's tree only."""

from __future__ import annotations

import os

import pytest
from configrepo import Workspace

from reconciler.errors import ConfigError
from reconciler.source.snapshot import clean_relpath, open_commit, open_snapshot


def test_commit_tree_reads_the_commit_not_the_dirty_working_tree(ws: Workspace) -> None:
    repo = ws.make_repo({"a.txt": "committed\n", "dir/b.txt": "b\n"})
    ws.write(repo, {"a.txt": "edited\n", "new.txt": "untracked\n"})
    commit = open_snapshot(str(repo), "HEAD")
    assert commit.read("a.txt") == b"committed\n"
    assert not commit.is_file("new.txt")
    assert open_snapshot(str(repo), None).read("a.txt") == b"edited\n"


def test_older_revision_is_readable_by_relative_name(ws: Workspace) -> None:
    repo = ws.make_repo({"a.txt": "one\n"})
    ws.write(repo, {"a.txt": "two\n"})
    ws.commit(repo)
    assert open_snapshot(str(repo), "HEAD~1").read("a.txt") == b"one\n"
    assert open_snapshot(str(repo), "HEAD").revision == ws.git(repo, "rev-parse", "HEAD")


def test_directories_list_the_same_in_a_commit_and_the_working_tree(ws: Workspace) -> None:
    repo = ws.make_repo({"d/x": "", "d/sub/y": "", "top": ""})
    for rev in (None, "HEAD"):
        snapshot = open_snapshot(str(repo), rev)
        assert snapshot.listdir("d") == ["sub", "x"]
        assert snapshot.is_dir("d/sub") and not snapshot.is_file("d/sub")
        assert snapshot.is_file("d/sub/y") and not snapshot.is_dir("d/sub/y")
        assert snapshot.listdir("nothing") == []
        assert ".git" not in snapshot.listdir("")


def test_symlink_leaving_the_repo_is_refused_in_both_views(ws: Workspace) -> None:
    repo = ws.make_repo({"keep": ""}, commit=False)
    os.symlink("/etc/hostname", repo / "out")
    os.symlink("../..", repo / "up")
    ws.commit(repo)
    for rev in (None, "HEAD"):
        snapshot = open_snapshot(str(repo), rev)
        for rel in ("out", "up/etc/passwd"):
            with pytest.raises(ConfigError, match="is a symlink that leaves the repo"):
                snapshot.read(rel)


def test_paths_with_dotdot_or_absolute_are_refused() -> None:
    assert clean_relpath("a//./b") == "a/b"
    with pytest.raises(ValueError, match="leaves the repo"):
        clean_relpath("a/../../b")
    with pytest.raises(ValueError, match="must be relative"):
        clean_relpath("/etc/passwd")
    with pytest.raises(ValueError, match="NUL"):
        clean_relpath("a\0b")


def test_unknown_revision_is_a_clear_error(ws: Workspace) -> None:
    repo = ws.make_repo({"a": ""})
    with pytest.raises(ConfigError, match="unknown revision 'no-such-branch'"):
        open_snapshot(str(repo), "no-such-branch")


def test_revision_outside_a_git_repository_is_a_clear_error(ws: Workspace) -> None:
    plain = ws.tmp / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError, match="not a git repository"):
        open_snapshot(str(plain), "HEAD")
    with pytest.raises(ConfigError, match="not a directory"):
        open_snapshot(str(ws.tmp / "missing"), None)


def test_symlink_inside_the_repo_is_followed_in_a_commit(ws: Workspace) -> None:
    repo = ws.make_repo({"templates/real.j2": "real\n"}, commit=False)
    (repo / "templates" / "alias.j2").symlink_to("real.j2")
    (repo / "shared").symlink_to("templates")
    ws.commit(repo)
    commit = open_snapshot(str(repo), "HEAD")
    assert commit.read("templates/alias.j2") == b"real\n"
    assert commit.read("shared/real.j2") == b"real\n"
    assert commit.is_dir("shared")


def test_symlink_loop_in_a_commit_is_refused(ws: Workspace) -> None:
    repo = ws.make_repo({"x.txt": "x\n"}, commit=False)
    (repo / "a").symlink_to("b")
    (repo / "b").symlink_to("a")
    ws.commit(repo)
    with pytest.raises(ConfigError, match="too many levels of symlinks"):
        open_snapshot(str(repo), "HEAD").read("a")


def test_a_bare_repository_is_read_by_revision(ws: Workspace) -> None:
    repo = ws.make_repo({"fleet.xml": "<fleet/>\n"})
    bare = repo.parent / "bare.git"
    ws.git(repo.parent, "clone", "-q", "--bare", str(repo), str(bare))
    assert open_snapshot(str(bare), "main").read("fleet.xml") == b"<fleet/>\n"


def test_a_known_commit_of_a_bare_cache_reads_as_by_revision(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's cache opens its chosen commit by its full id, from any working directory,
    and an id that would read as an option is refused before git sees it."""
    repo = ws.make_repo({"fleet.xml": "<fleet/>\n"})
    bare = repo.parent / "bare.git"
    ws.git(repo.parent, "clone", "-q", "--bare", str(repo), str(bare))
    sha = ws.git(repo, "rev-parse", "HEAD").strip()
    monkeypatch.chdir(repo.parent)
    tree = open_commit("bare.git", sha)
    monkeypatch.chdir(repo)
    assert (tree.read("fleet.xml"), tree.revision) == (b"<fleet/>\n", sha)
    with pytest.raises(ConfigError, match="unknown revision '--output=x'"):
        open_commit(str(bare), "--output=x")


def test_a_tree_id_is_read_like_a_commit(ws: Workspace) -> None:
    repo = ws.make_repo({"a.txt": "committed\n"})
    ws.write(repo, {"a.txt": "staged\n"})
    ws.git(repo, "add", "a.txt")
    tree = ws.git(repo, "write-tree").strip()
    assert open_snapshot(str(repo), tree).read("a.txt") == b"staged\n"


def test_large_blobs_are_read_on_demand(ws: Workspace) -> None:
    big = "x" * (2 * 1024 * 1024) + "\n"
    repo = ws.make_repo({"templates/app/big.bin": big, "small.txt": "s\n"})
    commit = open_snapshot(str(repo), "HEAD")
    assert commit.read("templates/app/big.bin") == big.encode()
    assert commit.read("small.txt") == b"s\n"
