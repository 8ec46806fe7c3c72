"""Results say what happened: counts agree with each other, skipped work reads skipped,
no internal name reaches a message, and a mirror failover is visible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from configrepo import BASIC, Workspace, class_xml
from cycle_support import BASE_ACTIONS, BASE_FILES, NODE, Node, web_class
from gitutil_repo import git

from reconciler.errors import Problem
from reconciler.source.cache import spread

pytestmark = pytest.mark.usefixtures("isolated_git")

STOPPED_SERVICE = """\
  <service name="demo" state="running" enabled="true" backend="command">
    <status>false</status><start>true</start><stop>true</stop>
    <enable>true</enable><disable>true</disable><is-enabled>false</is-enabled>
  </service>
"""


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_the_history_subject_counts_what_its_trailers_list(node: Node) -> None:
    node.push({**BASE_FILES, "classes/web.xml": web_class(BASE_ACTIONS + STOPPED_SERVICE)})

    node.cli("run")

    subject = git(node.history, "log", "-1", "--format=%s")
    assert node.trailers()["Held"] == "1: service:demo"
    assert "(3 applied, 1 held)" in subject, subject


def test_a_problem_shared_by_many_files_of_a_node_counts_nodes(ws: Workspace) -> None:
    three = "".join(f'  <file path="/etc/motd{n}" template="base/motd.j2"/>\n' for n in range(3))
    repo = ws.make_repo({**BASIC, "classes/base.xml": class_xml("base", three),
                         "templates/base/motd.j2": "{{ nope }}\n"})

    done = ws.cli("validate", "--repo", repo)

    assert "(and 2 more nodes)" in done.err, done.err


def test_a_problem_without_a_file_never_reads_input() -> None:
    assert str(Problem("something broke", line=3, node="web-01.x.y.z")) == \
        "something broke (node web-01.x.y.z)"


def test_a_restart_skipped_because_the_service_just_started_reads_skipped(
    ws: Workspace,
) -> None:
    from test_new_node import FLEET, NODE, QUEUE

    repo = ws.make_repo({"fleet.xml": FLEET, "classes/queue.xml": QUEUE})

    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", ws.tmp / "node",
                  "--host-commands", "--format", "json")

    service = next(a for a in json.loads(done.out)["actions"] if a["id"] == "service:queue")
    restart = next(c for c in service["changes"] if c["op"] == "notify-restart")
    assert restart["status"] == "skipped"
    assert restart["detail"] == "not needed: this run started the service with the new files"


def test_a_mirror_failover_is_shown_in_report_status_metrics_and_check(
    node: Node, tmp_path: Path
) -> None:
    primary = f"file://{tmp_path}/gone.git"
    # A node tries first the URL its name picks (cache.spread): make that the one gone.
    if spread(NODE, primary, [node.origin.url])[0] == primary:
        node.write_config(remote=primary, mirrors=[node.origin.url])
    else:
        node.write_config(remote=node.origin.url, mirrors=[primary])
    node.push_base()

    done = node.cli("run", "--format", "json")
    status = node.cli("status")
    check = node.cli("check")

    source = json.loads(done.out)["source"]
    assert source["remote"] == node.origin.url
    assert source["failover"].startswith(f"{primary} failed: ")
    assert f"MIRROR      served by {node.origin.url}; {primary} failed: " in status.out
    metrics = (node.state / "reconciler.prom").read_text()
    assert f'reconciler_source_failover{{remote="{node.origin.url}"}} 1' in metrics
    assert f"served by mirror {node.origin.url}" in check.out
