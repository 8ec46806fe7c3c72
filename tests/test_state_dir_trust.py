"""Trust nothing under --root: the state directory (by default `var/lib/reconciler` under the
root) is reached without following a link, must be the running user's and writable by
nobody else, and every file reconciler keeps there is opened without following a link.
A planted link is refused with a clear message, and nothing outside is touched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from configrepo import BASIC, CliResult, Workspace
from cycle_support import Node

from reconciler.atomicfile import read_own
from reconciler.errors import Failed, ReconcilerError, UsageError
from reconciler.lock import NodeLock
from reconciler.record import applied, lastrun
from reconciler.record.history import History
from reconciler.statedir import StateDir
from reconciler.system.backups import BackupStore
from reconciler.system.interface import UnsafePath
from reconciler.system.local import LocalSystem

NODE = "web-01.tickets.chi1.sa"
SECRET = b"outside the root: must stay as it is\n"
NOBODY = 65534


def apply(ws: Workspace, root: Path, *extra: str | Path) -> CliResult:
    repo = ws.tmp / "repo"
    if not repo.exists():
        ws.make_repo(BASIC)
    return ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root, *extra)


def planted_state(root: Path) -> Path:
    """The default state directory under `root`, made by hand before any run."""
    state = root / "var/lib/reconciler"
    state.mkdir(parents=True, mode=0o700)
    return state


def outside_file(ws: Workspace) -> Path:
    target = ws.tmp / "outside" / "precious"
    target.parent.mkdir()
    target.write_bytes(SECRET)
    return target


def refused_naming(done: CliResult, path: Path, words: str) -> None:
    assert done.code == 1, done
    assert "Traceback" not in done.err + done.out
    assert str(path) in done.out + done.err and words in done.out + done.err, done


def test_planted_lock_symlink_never_truncates_its_target(ws: Workspace) -> None:
    root = ws.tmp / "root"
    target = outside_file(ws)
    (planted_state(root) / "lock").symlink_to(target)

    done = apply(ws, root)

    refused_naming(done, root / "var/lib/reconciler/lock", "is a symlink")
    assert target.read_bytes() == SECRET
    assert not (root / "etc/motd").exists()


def test_lock_that_is_a_hard_link_to_another_file_is_refused(ws: Workspace) -> None:
    root = ws.tmp / "root"
    state = planted_state(root)
    target = ws.tmp / "precious"
    target.write_bytes(SECRET)
    os.link(target, state / "lock")

    done = apply(ws, root)

    refused_naming(done, state / "lock", "is a hard link")
    assert target.read_bytes() == SECRET


def test_node_lock_opened_alone_refuses_a_symlink(ws: Workspace) -> None:
    target = outside_file(ws)
    (ws.tmp / "lock").symlink_to(target)

    with pytest.raises(UsageError, match="the lock file is a symlink"):
        NodeLock(ws.tmp / "lock").acquire()
    assert target.read_bytes() == SECRET


def test_planted_backups_symlink_never_receives_a_backup(ws: Workspace) -> None:
    root = ws.tmp / "root"
    outside = ws.tmp / "outside"
    outside.mkdir()
    (planted_state(root) / "backups").symlink_to(outside)
    (root / "etc").mkdir()
    (root / "etc/motd").write_text("hand-made motd\n")

    done = apply(ws, root)

    refused_naming(done, root / "var/lib/reconciler/backups", "is a symlink")
    assert list(outside.iterdir()) == []
    assert (root / "etc/motd").read_text() == "hand-made motd\n"


def test_backup_store_alone_refuses_a_symlinked_directory(ws: Workspace) -> None:
    outside = ws.tmp / "outside"
    outside.mkdir()
    (ws.tmp / "backups").symlink_to(outside)
    source = ws.tmp / "file"
    source.write_text("bytes\n")
    fd = os.open(ws.tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(UnsafePath, match="refusing to back up /etc/file"):
            BackupStore(str(ws.tmp / "backups")).save_at(fd, "file", "/etc/file")
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["history", "cache", "source.git"])
def test_planted_directory_symlink_in_the_state_directory_is_refused(
    ws: Workspace, name: str
) -> None:
    root = ws.tmp / "root"
    outside = ws.tmp / "outside"
    outside.mkdir()
    (planted_state(root) / name).symlink_to(outside)

    done = apply(ws, root)

    refused_naming(done, root / "var/lib/reconciler" / name, "is a symlink")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["applied.json", "last-run.json", "reconciler.prom",
                                  "source-state.json", "secret-digest.key"])
def test_planted_file_symlink_in_the_state_directory_is_refused(
    ws: Workspace, name: str
) -> None:
    root = ws.tmp / "root"
    target = outside_file(ws)
    (planted_state(root) / name).symlink_to(target)

    done = apply(ws, root)

    refused_naming(done, root / "var/lib/reconciler" / name, "is a symlink")
    assert target.read_bytes() == SECRET


def test_symlinked_template_cache_below_cache_is_refused(ws: Workspace) -> None:
    root = ws.tmp / "root"
    outside = ws.tmp / "outside"
    outside.mkdir()
    (planted_state(root) / "cache").mkdir()
    (root / "var/lib/reconciler/cache/templates").symlink_to(outside)

    done = apply(ws, root)

    refused_naming(done, root / "var/lib/reconciler/cache/templates", "is a symlink")
    assert list(outside.iterdir()) == []


def test_state_files_are_never_read_through_a_symlink(ws: Workspace) -> None:
    state = StateDir.of(ws.tmp / "state")
    state.path.mkdir()
    target = outside_file(ws)
    for name in ("applied.json", "last-run.json"):
        (state.path / name).symlink_to(target)

    with pytest.raises(ReconcilerError) as error:
        applied.load(state)
    assert "symlink" in str(error.value.problems) and "outside the root" not in str(
        error.value.problems)
    with pytest.raises(lastrun.LastRunUnreadable, match="symlink"):
        lastrun.last_run(state)
    with pytest.raises(OSError, match="refusing to follow it"):
        read_own(state.path / "applied.json")


def test_history_repository_that_is_a_symlink_is_refused(ws: Workspace) -> None:
    elsewhere = History(ws.tmp / "elsewhere", "n")
    elsewhere.init()
    (ws.tmp / "history").symlink_to(ws.tmp / "elsewhere")

    with pytest.raises(Failed, match="the history repository is a symlink"):
        History(ws.tmp / "history", "n").record({}, b"{}", "a run", {})
    assert elsewhere.head() is None


def test_state_directory_reached_through_a_symlinked_component_is_refused(
    ws: Workspace,
) -> None:
    root = ws.tmp / "root"
    outside = ws.tmp / "outside"
    (outside / "lib").mkdir(parents=True)
    root.mkdir()
    (root / "var").symlink_to(outside)

    done = apply(ws, root)

    refused_naming(done, root / "var", "is a symlink; refusing to follow it")
    assert list((outside / "lib").iterdir()) == []


def test_state_directory_writable_by_others_is_refused(ws: Workspace) -> None:
    state = ws.tmp / "state"
    state.mkdir()
    state.chmod(0o777)

    done = apply(ws, ws.tmp / "root", "--state-dir", state)

    refused_naming(done, state, "writable by its group or others (mode 0777)")
    assert sorted(os.listdir(state)) == []


def test_directory_writable_by_others_on_the_way_under_the_root_is_refused(
    ws: Workspace,
) -> None:
    root = ws.tmp / "root"
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib").chmod(0o777)

    done = apply(ws, root)

    refused_naming(done, root / "var/lib", "a directory on the way to the state directory is "
                                           "writable by its group or others")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_state_directory_owned_by_another_user_is_refused(ws: Workspace) -> None:
    state = ws.tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)

    done = apply(ws, ws.tmp / "root", "--state-dir", state)

    refused_naming(done, state, f"owned by uid {NOBODY}, not by the running user (uid 0)")
    assert not (ws.tmp / "root/etc/motd").exists()


def test_apply_creates_a_new_root_and_says_so(ws: Workspace) -> None:
    root = ws.tmp / "new-root"
    state = ws.tmp / "state"

    done = apply(ws, root, "--state-dir", state, "--format", "json")

    report = json.loads(done.out)
    assert report["notes"] == [f"created the root directory {root}"]
    assert (root / "etc/motd").read_text() == f"hello from {NODE}\n"
    assert report["counts"]["failed"] == 0


def test_apply_into_a_new_root_says_so_in_text(ws: Workspace) -> None:
    root = ws.tmp / "new-root"

    done = apply(ws, root)

    assert f"note: created the root directory {root}" in done.out
    assert (root / "var/lib/reconciler/applied.json").is_file()
    assert (root / "etc/motd").is_file()


# ---------------------------------------------------------------- symlinks at managed paths

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a link away")


def foreign_link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    os.lchown(path, NOBODY, NOBODY)


@needs_root
def test_managed_file_where_another_users_symlink_stands_is_refused(ws: Workspace) -> None:
    root = ws.tmp / "root"
    target = outside_file(ws)
    foreign_link(root / "etc/motd", target)

    done = apply(ws, root, "--format", "json")

    report = json.loads(done.out)
    motd = next(a for a in report["actions"] if a["id"] == "file:/etc/motd")
    assert motd["status"] == "failed"
    assert motd["error"].startswith(f"/etc/motd is a symlink owned by uid {NOBODY}, not by "
                                    "root or the running user; refusing to replace it")
    assert done.code & 4 and report["exit_code"] & 4
    assert os.readlink(root / "etc/motd") == str(target)
    assert target.read_bytes() == SECRET


def test_managed_file_where_the_running_users_symlink_stands_is_replaced(
    ws: Workspace,
) -> None:
    root = ws.tmp / "root"
    target = outside_file(ws)
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").symlink_to(target)

    done = apply(ws, root)

    assert done.code & 4 == 0, done
    assert not (root / "etc/motd").is_symlink()
    assert target.read_bytes() == SECRET


@needs_root
def test_symlink_action_over_another_users_symlink_is_refused(ws: Workspace) -> None:
    ws.make_repo({**BASIC, "classes/base.xml": '<class name="base">\n'
                  '  <symlink path="/etc/localtime" target="/usr/share/zoneinfo/UTC"/>\n'
                  '</class>\n'})
    root = ws.tmp / "root"
    foreign_link(root / "etc/localtime", ws.tmp / "elsewhere")

    done = apply(ws, root, "--format", "json")

    link = next(a for a in json.loads(done.out)["actions"] if a["id"] == "symlink:/etc/localtime")
    assert link["status"] == "failed" and "owned by uid 65534" in link["error"]
    assert os.readlink(root / "etc/localtime") == str(ws.tmp / "elsewhere")


@needs_root
def test_local_system_refuses_to_write_over_another_users_symlink(ws: Workspace) -> None:
    root = ws.tmp / "root"
    foreign_link(root / "etc/app.conf", ws.tmp / "elsewhere")

    with pytest.raises(UnsafePath, match="owned by uid 65534"):
        LocalSystem(str(root)).write_atomic("/etc/app.conf", b"x\n", 0o644, None, None)
    with pytest.raises(UnsafePath, match="owned by uid 65534"):
        LocalSystem(str(root)).symlink("/etc/app.conf", "/x")
    assert (root / "etc/app.conf").is_symlink()


def test_run_from_the_remote_creates_a_new_root_and_says_so_like_apply(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.push_base()
    assert not node.root.exists()

    report = node.run()

    assert report.notes == [f"created the root directory {node.root}"]
    assert report.counts.failed == 0 and (node.root / "etc/x").is_file()
