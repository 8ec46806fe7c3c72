"""The node's history repository against real git, including runs killed mid-record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gitutil_repo import git

from reconciler.record.history import RUN_JSON, History

REPO = Path(__file__).resolve().parents[1]
NODE = "proxy-03.tickets.chi1.sa"


pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "state" / "history", node=NODE)


def trailers(result: str = "changed", changed: int = 1) -> dict[str, str]:
    return {
        "Config-Commit": "a" * 40,
        "Config-Signed-By": "alice@example.org SHA256:abc",
        "Node": NODE,
        "Mode": "change",
        "Result": result,
        "Changed": str(changed),
        "Held": "0",
        "Failed": "0",
    }


def tree_files(history: History, rev: str = "main") -> list[str]:
    return git(history.path, "ls-tree", "-r", "--name-only", rev).splitlines()


def test_first_record_creates_a_bare_repo_with_the_snapshot(history: History) -> None:
    sha = history.record(
        {"/etc/nginx/nginx.conf": b"worker_processes 4;\n"},
        b'{"result": "changed"}\n',
        "proxy-03: 1 changed",
        trailers(),
    )
    assert git(history.path, "rev-parse", "--is-bare-repository") == "true"
    assert git(history.path, "rev-parse", "main") == sha == history.head()
    assert tree_files(history) == ["etc/nginx/nginx.conf", RUN_JSON]
    assert git(history.path, "show", "main:etc/nginx/nginx.conf") == "worker_processes 4;"


def test_two_records_show_their_trailers_in_git_log(history: History) -> None:
    history.record({"/etc/a.conf": b"1\n"}, b"{}", "first run", trailers("changed", 1))
    history.record({"/etc/a.conf": b"2\n"}, b"{}", "second run", trailers("drift", 3))
    shown = git(history.path, "log", "--format=%s|%(trailers:key=Result,valueonly)")
    assert shown.split("\n\n") == ["second run|drift", "first run|changed"]
    message = git(history.path, "log", "-1", "--format=%B")
    assert message.splitlines()[:3] == ["second run", "", f"Config-Commit: {'a' * 40}"]
    assert [line.split(":")[0] for line in message.splitlines()[2:]] == list(trailers())


def test_log_parses_records_back_newest_first(history: History) -> None:
    began = int(time.time())  # commit times have whole seconds
    first = history.record({"/etc/a.conf": b"1\n"}, b"{}", "first run", trailers("changed", 1))
    second = history.record(
        {"/etc/a.conf": b"1\n", "/etc/b.conf": b"b\n"}, b"{}", "second run", trailers("drift", 2)
    )
    entries = history.log(10)
    assert [e.sha for e in entries] == [second, first]
    assert entries[0].summary == "second run"
    assert entries[0].trailers == trailers("drift", 2)
    assert entries[0].changed == ["/etc/b.conf"]
    assert entries[1].changed == ["/etc/a.conf"]
    assert began <= entries[1].time.timestamp() <= entries[0].time.timestamp() <= time.time()
    assert [e.sha for e in history.log(1)] == [second]


def test_log_filtered_by_node_path(history: History) -> None:
    first = history.record({"/etc/a.conf": b"1"}, b"{}", "a", trailers())
    history.record({"/etc/a.conf": b"1", "/etc/b.conf": b"1"}, b"{}", "b", trailers())
    third = history.record({"/etc/a.conf": b"2", "/etc/b.conf": b"1"}, b"{}", "c", trailers())
    assert [e.sha for e in history.log(10, path="/etc/a.conf")] == [third, first]


def test_log_of_a_missing_repo_is_empty(history: History) -> None:
    assert history.log() == []
    assert history.head() is None


def test_records_leave_fsck_strict_clean(history: History) -> None:
    for number in range(3):
        history.record(
            {"/etc/x.conf": f"{number}\n".encode(), "/usr/local/bin/tool": b"#!/bin/sh\n"},
            json.dumps({"run": number}).encode(),
            f"run {number}",
            trailers(),
        )
    git(history.path, "fsck", "--strict", "--no-dangling")
    assert len(git(history.path, "log", "--format=%H").splitlines()) == 3


def test_files_no_longer_managed_vanish_from_the_tree(history: History) -> None:
    history.record({"/etc/a.conf": b"a", "/etc/b/b.conf": b"b"}, b"{}", "both", trailers())
    history.record({"/etc/a.conf": b"a"}, b"{}", "only a", trailers())
    assert tree_files(history) == ["etc/a.conf", RUN_JSON]
    assert tree_files(history, "main~1") == ["etc/a.conf", "etc/b/b.conf", RUN_JSON]
    assert history.log(1)[0].changed == ["/etc/b/b.conf"]


def test_incremental_record_keeps_other_files_and_drops_deleted(history: History) -> None:
    history.record(
        {"/etc/a.conf": b"a", "/etc/b.conf": b"b", "/etc/c.conf": b"c"}, b"{}", "all", trailers()
    )
    history.record({"/etc/a.conf": b"a2"}, b"{}", "a changed, c gone", trailers(), ["/etc/c.conf"])
    assert tree_files(history) == ["etc/a.conf", "etc/b.conf", RUN_JSON]
    assert history.read("main", "/etc/a.conf") == b"a2"
    assert history.read("main", "/etc/b.conf") == b"b"


def test_read_returns_recorded_bytes_and_the_run_report(history: History) -> None:
    payload = bytes(range(256))
    sha = history.record({"/etc/blob.bin": payload}, b'{"ok": true}', "binary", trailers())
    assert history.read(sha, "/etc/blob.bin") == payload
    assert history.read(sha, RUN_JSON) == b'{"ok": true}'
    with pytest.raises(FileNotFoundError):
        history.read(sha, "/etc/nope")


def test_committer_is_reconciler_at_the_node(history: History) -> None:
    history.record({}, b"{}", "empty", trailers())
    who = git(history.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>")
    assert who == f"reconciler <reconciler@{NODE}>|reconciler <reconciler@{NODE}>"
    assert git(history.path, "config", "--file", "config", "user.email") == f"reconciler@{NODE}"


@pytest.mark.parametrize(
    ("files", "summary", "extra", "problem"),
    [
        ({"/etc/../x": b""}, "ok", {}, "bad path"),
        ({"/run.json": b""}, "ok", {}, "collides"),
        ({"/etc/.git/config": b""}, "ok", {}, "bad path"),
        ({"/etc/a": b"", "/etc/a/b": b""}, "ok", {}, "as a file and as a directory"),
        ({}, "two\nlines", {}, "one non-empty line"),
        ({}, "ok", {"Bad Key": "x"}, "bad trailer key"),
        ({}, "ok", {"Held": "1\nResult: forged"}, "one-line value"),
        ({}, "ok", {"Held": ""}, "non-empty"),
    ],
)
def test_bad_records_are_rejected_and_write_nothing(
    history: History,
    files: dict[str, bytes],
    summary: str,
    extra: dict[str, str],
    problem: str,
) -> None:
    with pytest.raises(ValueError, match=problem):
        history.record(files, b"{}", summary, {**trailers(), **extra})
    assert not history.path.exists()


LOOP = """
import itertools, sys
from reconciler.record.history import History
history = History(sys.argv[1], node="proxy-03.tickets.chi1.sa")
for n in itertools.count():
    count = 70 + n % 7 if n % 3 == 1 else n % 7 + 1  # some records big enough to pack
    files = {f"/etc/app/{i}.conf": f"{n} {i}\\n".encode() for i in range(count)}
    history.record(files, b'{"n": %d}' % n, f"run {n}", {"Result": "changed", "Run": str(n)})
    print(n, flush=True)
"""


def test_records_killed_at_random_moments_leave_fsck_clean(history: History) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    recorded = 0
    for records in (1, 2, 3, 5):
        looping = subprocess.Popen([sys.executable, "-c", LOOP, str(history.path)], env=env,
                                   stdout=subprocess.PIPE, text=True)
        assert looping.stdout is not None
        for _ in range(records):  # then kill it wherever it is in the next record
            assert looping.stdout.readline(), "the loop stopped recording"
        os.kill(looping.pid, signal.SIGKILL)
        looping.wait()
        looping.stdout.close()
        recorded += records
        git(history.path, "fsck", "--strict", "--no-dangling")
    before = len(history.log(1000))
    assert before >= recorded
    history.record({"/etc/after.conf": b"ok"}, b"{}", "after the kills", trailers())
    git(history.path, "fsck", "--strict", "--no-dangling")
    assert len(history.log(1000)) == before + 1


def test_the_head_is_read_from_packed_refs_once_git_packed_it(history: History) -> None:
    first = history.record({"/etc/a": b"1\n"}, b"{}\n", "first", trailers())
    git(history.path, "pack-refs", "--all")
    assert not (history.path / "refs/heads/main").exists()

    assert history.head() == first
    second = history.record({"/etc/a": b"2\n"}, b"{}\n", "second", trailers())
    assert history.head() == second == git(history.path, "rev-parse", "main")


def test_each_record_is_one_pack_and_no_loose_object(history: History) -> None:
    files = {f"/etc/app/{number}.conf": f"app {number}\n".encode() for number in range(200)}
    history.record(files, b"{}\n", "first", trailers())
    files["/etc/app/7.conf"] = b"changed\n"
    history.record(files, b"{}\n", "second", trailers())

    assert len(list((history.path / "objects" / "pack").glob("*.pack"))) == 2
    assert not [d for d in (history.path / "objects").iterdir() if len(d.name) == 2]
    assert history.read("main~1", "/etc/app/7.conf") == b"app 7\n"
    assert history.read("main", "/etc/app/7.conf") == b"changed\n"
    assert history.read("main", "/etc/app/199.conf") == b"app 199\n"
    assert history.log(1)[0].changed == ["/etc/app/7.conf"]
    assert git(history.path, "fsck", "--strict", "--no-dangling") == ""


def test_paths_with_quotes_newlines_and_spaces_are_recorded_as_they_are(
    history: History,
) -> None:
    odd = ['/etc/a "quoted" name', "/etc/new\nline", "/etc/back\\slash", "/etc/ lead"]
    history.record({path: path.encode() for path in odd}, b"{}\n", "odd", trailers())

    for path in odd:
        assert history.read("main", path) == path.encode()
    history.record({}, b"{}\n", "nothing", trailers(), deleted=[odd[1]])
    assert history.log(1)[0].changed == [odd[1]]


def test_a_record_packs_the_objects_again_once_git_would_find_too_many_packs(
    history: History,
) -> None:
    history.record({"/etc/a": b"1\n"}, b"{}\n", "first", trailers())
    for number in range(51):
        blob = f"pack {number}\n".encode()
        subprocess.run(["git", "-C", str(history.path), "-c", "fastimport.unpackLimit=0",
                        "fast-import", "--quiet"],
                       input=b"blob\ndata %d\n%s\n" % (len(blob), blob), check=True,
                       capture_output=True)

    history.record({"/etc/a": b"2\n"}, b"{}\n", "second", trailers())

    assert len(list((history.path / "objects" / "pack").glob("*.pack"))) == 1
    assert git(history.path, "fsck", "--strict", "--no-dangling") == ""


def test_a_node_name_git_would_not_take_as_an_address_is_recorded_without_its_brackets(
    tmp_path: Path,
) -> None:
    history = History(tmp_path / "history", node="x>y <z")

    history.record({"/etc/a": b"1\n"}, b"{}\n", "first", trailers())

    assert git(history.path, "log", "-1", "--format=%ce") == "reconciler@xy z"
