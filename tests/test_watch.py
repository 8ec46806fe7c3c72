"""The drift watch: which paths are watched, what inotify reports, what counts as drift."""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import GREETING, NODE, make_origin
from gitutil_repo import git, isolate_git

from reconciler.agent.watch import Debounce, DriftFilter, Managed, Watcher, WatchSet, probe_path
from reconciler.compile.compiler import load_fleet
from reconciler.record.applied import Applied, AppliedState
from reconciler.run import desire
from reconciler.source.snapshot import open_snapshot

MANAGED = {"/etc/web", "/etc/web/app.conf", "/etc/web/other.conf", "/etc/web/current"}


@pytest.fixture
def watchset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> WatchSet:
    home = tmp_path / "home"
    home.mkdir()
    isolate_git(monkeypatch, home)
    origin = make_origin(tmp_path)
    commit = git(origin.work, "rev-parse", "HEAD")
    desired = desire(load_fleet(open_snapshot(str(origin.bare), commit)), NODE)
    return WatchSet.from_desired(desired, str(tmp_path / "root"))


@pytest.fixture
def root(watchset: WatchSet) -> Path:
    """The node root with the managed files in place."""
    base = Path(watchset.root)
    (base / "etc/web").mkdir(parents=True)
    (base / "etc/web/app.conf").write_text(GREETING)
    (base / "etc/web/other.conf").write_text("static\n")
    (base / "etc/web/current").symlink_to("/etc/web/app.conf")
    return base


@pytest.fixture
def events(root: Path, watchset: WatchSet) -> Iterator[queue.SimpleQueue[str]]:
    arrived: queue.SimpleQueue[str] = queue.SimpleQueue()
    watcher = Watcher(arrived.put)
    watcher.start()
    watcher.follow(watchset)
    yield arrived
    watcher.stop()


def seen_within(arrived: queue.SimpleQueue[str], path: Path, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if arrived.get(timeout=0.05) == str(path):
                return True
        except queue.Empty:
            continue
    return False


def reported_until(arrived: queue.SimpleQueue[str], path: Path, timeout: float = 30.0) -> list[str]:
    """Every path reported up to the first report of `path` (which the test just changed):
    events arrive in order, so this is all that was reported before."""
    got: list[str] = []
    while str(path) not in got:
        got.append(arrived.get(timeout=timeout))
    return got


def quiet_for(arrived: queue.SimpleQueue[str], seconds: float) -> list[str]:
    time.sleep(seconds)
    got = []
    while not arrived.empty():
        got.append(arrived.get())
    return got


def test_watch_set_maps_every_managed_path_to_its_action(watchset: WatchSet) -> None:
    assert set(watchset.paths) == MANAGED
    assert watchset.paths["/etc/web/app.conf"] == Managed(frozenset({"file:/etc/web/app.conf"}))
    assert watchset.actions_of(["/etc/web", "/etc/web/current"]) == {
        "directory:/etc/web", "symlink:/etc/web/current"}


def test_event_on_a_directory_touches_everything_managed_below_it(watchset: WatchSet) -> None:
    assert set(watchset.touched("/etc/web")) == MANAGED
    assert set(watchset.touched("/etc")) == MANAGED
    assert watchset.touched("/etc/web/app.conf") == ["/etc/web/app.conf"]
    assert watchset.touched("/etc/webx") == []
    assert watchset.touched("/etc/web/.app.conf.tmp") == []


def test_node_paths_are_host_paths_under_the_root_only(watchset: WatchSet) -> None:
    assert watchset.node_path(os.path.join(watchset.root, "etc/web")) == "/etc/web"
    assert watchset.node_path(watchset.root) == "/"
    assert watchset.node_path("/elsewhere/etc/web") is None


def test_watched_directories_are_parents_and_managed_directories(
    watchset: WatchSet, root: Path
) -> None:
    assert watchset.directories() == {str(root / "etc"), str(root / "etc/web")}


def test_a_directory_still_to_be_created_is_watched_through_its_nearest_ancestor(
    watchset: WatchSet,
) -> None:
    Path(watchset.root).mkdir()
    assert watchset.directories() == {watchset.root}


def test_symlinked_directory_is_not_watched_through(watchset: WatchSet, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    Path(watchset.root).mkdir()
    (Path(watchset.root) / "etc").symlink_to(tmp_path / "elsewhere")
    assert watchset.directories() == {watchset.root}


def test_in_place_edit_is_reported(events: queue.SimpleQueue[str], root: Path) -> None:
    with (root / "etc/web/app.conf").open("a") as handle:
        handle.write("more\n")
    assert seen_within(events, root / "etc/web/app.conf")


def test_deletion_is_reported(events: queue.SimpleQueue[str], root: Path) -> None:
    (root / "etc/web/other.conf").unlink()
    assert seen_within(events, root / "etc/web/other.conf")


def test_replace_by_rename_is_reported(events: queue.SimpleQueue[str], root: Path) -> None:
    (root / "etc/web/.new").write_text("replaced\n")
    os.rename(root / "etc/web/.new", root / "etc/web/app.conf")
    assert seen_within(events, root / "etc/web/app.conf")


def test_chmod_of_a_managed_directory_is_reported(
    events: queue.SimpleQueue[str], root: Path
) -> None:
    (root / "etc/web").chmod(0o700)
    assert seen_within(events, root / "etc/web")


def test_reading_managed_files_reports_nothing(
    events: queue.SimpleQueue[str], root: Path, watchset: WatchSet
) -> None:
    for name in ("app.conf", "other.conf"):
        (root / "etc/web" / name).read_bytes()
    probe_path(watchset.system, "/etc/web/app.conf")
    (root / "etc/web/other.conf").write_text("changed after the reads\n")
    assert set(reported_until(events, root / "etc/web/other.conf")) == {
        str(root / "etc/web/other.conf")}


def test_a_replaced_directory_is_watched_again_after_follow(
    root: Path, watchset: WatchSet
) -> None:
    arrived: queue.SimpleQueue[str] = queue.SimpleQueue()
    watcher = Watcher(arrived.put)
    watcher.start()
    try:
        assert watcher.follow(watchset) == (2, 0, [])
        shutil.rmtree(root / "etc/web")
        (root / "etc/web").mkdir()
        quiet_for(arrived, 0.3)
        assert watcher.follow(watchset) == (1, 1, [])
        quiet_for(arrived, 0.2)
        (root / "etc/web/app.conf").write_text("recreated by hand\n")
        assert seen_within(arrived, root / "etc/web/app.conf")
    finally:
        watcher.stop()


def test_directories_no_longer_managed_are_dropped(root: Path, watchset: WatchSet) -> None:
    arrived: queue.SimpleQueue[str] = queue.SimpleQueue()
    watcher = Watcher(arrived.put)
    watcher.start()
    try:
        watcher.follow(watchset)
        assert watcher.follow(None) == (0, 2, [])
        (root / "etc/web/app.conf").write_text("not watched any more\n")
        assert quiet_for(arrived, 0.3) == []
    finally:
        watcher.stop()


def recorded(path: Path, action: str) -> Applied:
    st = path.lstat()
    return Applied(type="file", action=action, mode=st.st_mode & 0o7777, uid=st.st_uid,
                   gid=st.st_gid, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def test_state_reconciler_recorded_writing_is_not_drift(root: Path, watchset: WatchSet) -> None:
    applied = AppliedState(paths={
        "/etc/web/app.conf": recorded(root / "etc/web/app.conf", "file:/etc/web/app.conf")})
    assert DriftFilter().drifted(watchset, ["/etc/web/app.conf"], applied) == set()


def test_content_differing_from_the_record_is_drift(root: Path, watchset: WatchSet) -> None:
    applied = AppliedState(paths={
        "/etc/web/app.conf": recorded(root / "etc/web/app.conf", "file:/etc/web/app.conf")})
    (root / "etc/web/app.conf").write_text("edited by hand\n")
    assert DriftFilter().drifted(watchset, ["/etc/web/app.conf"], applied) == {
        "/etc/web/app.conf"}


def test_mode_differing_from_the_record_is_drift(root: Path, watchset: WatchSet) -> None:
    applied = AppliedState(paths={
        "/etc/web/app.conf": recorded(root / "etc/web/app.conf", "file:/etc/web/app.conf")})
    (root / "etc/web/app.conf").chmod(0o666)
    assert DriftFilter().drifted(watchset, ["/etc/web/app.conf"], applied) == {
        "/etc/web/app.conf"}


def test_a_file_behind_a_symlinked_directory_is_drift_even_where_the_link_leads_to_it(
    root: Path, watchset: WatchSet, tmp_path: Path
) -> None:
    applied = AppliedState(paths={
        "/etc/web/app.conf": recorded(root / "etc/web/app.conf", "file:/etc/web/app.conf")})
    (root / "etc/web").rename(tmp_path / "elsewhere")
    (root / "etc/web").symlink_to(tmp_path / "elsewhere")
    assert DriftFilter().drifted(watchset, ["/etc/web/app.conf"], applied) == {
        "/etc/web/app.conf"}


def test_a_state_already_seen_is_not_drift_twice(root: Path, watchset: WatchSet) -> None:
    drift = DriftFilter()
    (root / "etc/web/app.conf").write_text("edited by hand\n")
    assert drift.drifted(watchset, ["/etc/web/app.conf"], None) == {"/etc/web/app.conf"}
    os.utime(root / "etc/web/app.conf")  # a touch: same state
    assert drift.drifted(watchset, ["/etc/web/app.conf"], None) == set()
    (root / "etc/web/app.conf").write_text(GREETING)
    assert drift.drifted(watchset, ["/etc/web/app.conf"], None) == {"/etc/web/app.conf"}


def test_deleting_a_path_the_config_wants_absent_is_not_drift(tmp_path: Path) -> None:
    watchset = WatchSet(str(tmp_path), {"/gone": Managed(frozenset({"file:/gone"}), absent=True)})
    assert DriftFilter().drifted(watchset, ["/gone"], AppliedState()) == set()


def test_unmanaged_paths_are_never_drift(root: Path, watchset: WatchSet) -> None:
    assert DriftFilter().drifted(watchset, ["/etc/web/notes.txt"], None) == set()


def test_burst_of_events_is_one_batch() -> None:
    debounce = Debounce(quiet=0.2, longest=1.0)
    for step in range(10):
        debounce.add("/etc/web/app.conf", now=100 + step * 0.01)
    assert not debounce.ready(100.2)
    assert debounce.ready(100.3)
    assert debounce.take() == {"/etc/web/app.conf"}
    assert debounce.deadline() is None


def test_endless_stream_of_events_is_cut_at_the_longest_wait() -> None:
    debounce = Debounce(quiet=0.2, longest=1.0)
    for step in range(30):
        debounce.add(f"/etc/f{step}", now=100 + step * 0.1)
    assert debounce.deadline() == 101.0
    assert debounce.ready(101.0)
