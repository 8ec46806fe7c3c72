"""A node publishes its runs to `refs/reports/<node>`: signed, only when there is news
(or a heartbeat is due), in the background, and never at the run's expense."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fleet_support import (
    CLASSES,
    FleetNode,
    bare,
    cli,
    config_origin,
    fleet_xml,
    push_daemon,
    refs,
    wait_published,
    wait_until,
)
from gitutil_repo import free_port, git

from reconciler.fleet import publish
from reconciler.fleet.chain import Chain
from reconciler.fleet.model import FleetReport
from reconciler.fleet.push import PUSH_LOCK

NODE = "web-01.shop.c1.t"
FILES: dict[str, str | bytes | None] = {"fleet.xml": fleet_xml(web=2, cache=1), **CLASSES}


def report_at(repo: Path, rev: str) -> FleetReport:
    return FleetReport.model_validate_json(git(repo, "show", f"{rev}:report.json"))


def chain_length(repo: Path, node: str = NODE) -> int:
    return int(git(repo, "rev-list", "--count", f"refs/reports/{node}"))


def test_a_run_publishes_a_report_signed_by_its_node(tmp_path: Path) -> None:
    origin = config_origin(tmp_path, FILES)
    reports = bare(tmp_path / "reports.git")
    node = FleetNode(tmp_path, NODE, origin.url, f"file://{reports}", detached=True)
    run = node.run()  # the pusher process publishes after the run
    wait_published([node])
    report = report_at(reports, f"refs/reports/{NODE}")
    assert (report.node, report.result, report.exit_code) == (NODE, "changed", run.exit_code)
    assert report.config.subject == "fleet" and report.config.commit == run.config_commit
    assert [i.path for i in report.items] == ["/etc/web.conf"]
    assert "+server_name web-01.shop.c1.t;" in report.diffs[0].diff
    signers = tmp_path / "allowed"
    signers.write_text(f'{NODE} namespaces="git" {node.public_key}\n')
    verified = git(reports, "-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "-1",
                   "--format=%G? %GS", f"refs/reports/{NODE}")
    assert verified == f"G {NODE}"


def test_a_run_with_nothing_new_adds_no_report_until_a_heartbeat_is_due(
    tmp_path: Path,
) -> None:
    origin = config_origin(tmp_path, FILES)
    reports = bare(tmp_path / "reports.git")
    node = FleetNode(tmp_path, NODE, origin.url, f"file://{reports}")
    node.run()  # changed: news
    in_sync = node.run()  # in sync now: news
    wait_published([node])
    assert chain_length(reports) == 2
    again = publish.after_run(node.cfg, in_sync, now=in_sync.started + timedelta(minutes=5))
    assert again == publish.Publication()  # nothing queued, nothing to push
    later = publish.after_run(node.cfg, in_sync, now=in_sync.started + timedelta(hours=2))
    assert later.queued and later.heartbeat and later.pusher
    wait_published([node])
    assert chain_length(reports) == 3
    assert report_at(reports, f"refs/reports/{NODE}").heartbeat


def test_a_drift_watch_run_that_found_nothing_is_not_published(tmp_path: Path) -> None:
    origin = config_origin(tmp_path, FILES)
    node = FleetNode(tmp_path, NODE, origin.url, f"file://{bare(tmp_path / 'r.git')}")
    node.run()
    quiet = node.run(fetch=False, only=frozenset({"file:/etc/web.conf"}))
    assert quiet.result == "in-sync"
    assert not publish.after_run(node.cfg, quiet, partial=True).queued


def test_a_node_without_a_signing_key_runs_as_before_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    origin = config_origin(tmp_path, FILES)
    node = FleetNode(tmp_path, NODE, origin.url, f"file://{bare(tmp_path / 'r.git')}",
                     with_key=False)
    run = node.run()
    assert run.result == "changed"
    assert not node.reports_dir().exists()
    assert publish.after_run(node.cfg, run).skipped == (
        f"no signing key at {node.key} (reconciler fleet keygen)")


def test_a_publishing_error_never_reaches_the_run(tmp_path: Path) -> None:
    origin = config_origin(tmp_path, FILES)
    node = FleetNode(tmp_path, NODE, origin.url, f"file://{bare(tmp_path / 'r.git')}")
    node.state.mkdir(parents=True)
    node.reports_dir().write_text("a file where the reports directory should be\n")
    run = node.run()
    assert (run.result, run.exit_code) == ("changed", 2)
    assert publish.after_run(node.cfg, run).skipped is not None


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung reports server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def _agent_toml(node: FleetNode, reports: str, path: Path) -> Path:
    settings = {"remote": node.cfg.remote, "node": node.name, "state-dir": str(node.state),
                "root": str(node.root), "signing-key": str(node.key), "reports": reports,
                "fetch-timeout": 60}
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return path


def _lock_taken(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_hung_reports_server_neither_delays_nor_changes_the_run(
    tmp_path: Path, silent_server: int,
) -> None:
    origin = config_origin(tmp_path, FILES)
    hung = FleetNode(tmp_path / "a", NODE, origin.url, None)
    fine = FleetNode(tmp_path / "b", NODE, origin.url, None)
    reports = bare(tmp_path / "reports.git")
    done = cli("run", "--format", "json", "--config", str(_agent_toml(
        hung, f"git://127.0.0.1:{silent_server}/reports.git", tmp_path / "hung.toml")))
    # The run is over while its pusher still waits for the hung server.
    wait_until(lambda: _lock_taken(hung.reports_dir() / PUSH_LOCK), 30, "pusher started")
    assert _lock_taken(hung.reports_dir() / PUSH_LOCK)
    normal = cli("run", "--format", "json", "--config", str(_agent_toml(
        fine, f"file://{reports}", tmp_path / "fine.toml")))
    assert done.returncode == normal.returncode == 2, done.stderr
    ran, expected = json.loads(done.stdout), json.loads(normal.stdout)
    assert (ran["result"], ran["counts"]) == (expected["result"], expected["counts"])


def test_a_report_that_could_not_be_pushed_goes_out_with_the_next_run(tmp_path: Path) -> None:
    origin = config_origin(tmp_path, FILES)
    served = tmp_path / "served"
    served.mkdir()
    reports = bare(served / "reports.git")
    port = free_port()  # nothing listens there yet
    node = FleetNode(tmp_path, NODE, origin.url, f"git://127.0.0.1:{port}/reports.git")
    first = node.run()
    wait_until(lambda: node.reports_dir().joinpath("pushed.json").exists()
               and not node.published(), 60, "the failed push recorded")
    pushed = json.loads(node.reports_dir().joinpath("pushed.json").read_text())
    assert pushed["tip"] and pushed["urls"] == {} and pushed["last"]["errors"]
    assert first.result == "changed"
    with push_daemon(served) as live:
        node.cfg = node.cfg.model_copy(update={"reports": f"git://127.0.0.1:{live}/reports.git"})
        node.run()
        wait_published([node])
    assert chain_length(reports) == 2
    oldest = git(reports, "rev-list", "--max-parents=0", f"refs/reports/{NODE}")
    assert report_at(reports, oldest).result == "changed"
    assert report_at(reports, f"refs/reports/{NODE}").result == "in-sync"


def test_reports_go_to_a_mirror_when_the_reports_url_is_down(tmp_path: Path) -> None:
    origin = config_origin(tmp_path, FILES)
    mirror = bare(tmp_path / "mirror.git")
    down = f"git://127.0.0.1:{free_port()}/reports.git"
    mirrors: dict[str, Any] = {"report-mirrors": [f"file://{mirror}"]}
    node = FleetNode(tmp_path, NODE, origin.url, down, **mirrors)
    node.run()
    wait_until(lambda: bool(refs(mirror)), 60, "report pushed to the mirror")
    assert list(refs(mirror)) == [f"refs/reports/{NODE}"]


def test_a_node_report_history_stays_bounded(tmp_path: Path) -> None:
    node = FleetNode(tmp_path, NODE, "file:///unused", None)
    chain = Chain(tmp_path / "chain.git", NODE, node.key, max_reports=6, keep=3)
    lengths = []
    for number in range(10):
        chain.append(f'{{"n": {number}}}'.encode(), f"report {number}\n\nNode: {NODE}\n")
        lengths.append(len(chain.history()))
    assert lengths == [1, 2, 3, 4, 5, 6, 3, 4, 5, 6]
    messages = git(chain.path, "log", "--format=%s", chain.ref).splitlines()
    assert messages == [f"report {n}" for n in (9, 8, 7, 6, 5, 4)]
    signers = tmp_path / "allowed"
    signers.write_text(f'{NODE} namespaces="git" {node.public_key}\n')
    statuses = git(chain.path, "-c", f"gpg.ssh.allowedSignersFile={signers}", "log",
                   "--format=%G?", chain.ref)
    assert statuses.split() == ["G"] * 6


def test_the_chain_tip_is_the_ref_as_git_keeps_it_loose_or_packed(tmp_path: Path) -> None:
    node = FleetNode(tmp_path, NODE, "file:///unused", None)
    chain = Chain(tmp_path / "chain.git", NODE, node.key)
    assert chain.tip() is None
    first = chain.append(b'{"n": 1}', "report 1\n")
    git(chain.path, "pack-refs", "--all")  # the ref now lives in packed-refs alone
    assert chain.tip() == first
    second = chain.append(b'{"n": 2}', "report 2\n")
    assert chain.tip() == second == git(chain.path, "rev-parse", chain.ref)
    assert list(chain.history()) == [second, first]
