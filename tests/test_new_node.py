"""A brand-new node of a new class is provisioned in one run: restarting a service that
is not running yet interrupts nothing, so the files that notify it are not held above
the ceiling; and `plan` shows what added nodes get."""

from __future__ import annotations

import json

from configrepo import Workspace

from reconciler.record.report import EXIT_CHANGES

NODE = "queue-01.shop.lab.t"

FLEET = """\
<fleet domain="t">
  <defaults><policy max-severity="reload"/></defaults>
  <nodes class="queue" product="shop" cluster="lab" count="1"/>
</fleet>
"""

QUEUE = """\
<class name="queue">
  <file path="/etc/queue/queue.conf" notify="service:queue"><content>workers = 4
</content></file>
  <service name="queue" state="running" backend="command" severity="reload">
    <status>test -e running</status><start>touch running</start><stop>rm -f running</stop>
    <restart>touch restarted</restart>
  </service>
</class>
"""


def _changes(report: dict[str, object], action: str) -> list[dict[str, str]]:
    actions = report["actions"]
    assert isinstance(actions, list)
    found = next(a for a in actions if a["id"] == action)
    changes: list[dict[str, str]] = found["changes"]
    return changes


def test_a_new_node_gets_its_files_and_service_in_one_run(ws: Workspace) -> None:
    repo = ws.make_repo({"fleet.xml": FLEET, "classes/queue.xml": QUEUE})
    root = ws.tmp / "node"

    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root, "--host-commands",
                  "--format", "json")

    assert done.code == EXIT_CHANGES, done.out + done.err
    assert (root / "etc/queue/queue.conf").read_text() == "workers = 4\n"
    assert (root / "running").exists()
    assert not (root / "restarted").exists()
    [written] = _changes(json.loads(done.out), "file:/etc/queue/queue.conf")
    assert (written["status"], written["severity"]) == ("applied", "none")


def test_restarting_a_running_service_is_still_held_above_the_ceiling(ws: Workspace) -> None:
    repo = ws.make_repo({"fleet.xml": FLEET, "classes/queue.xml": QUEUE})
    root = ws.tmp / "node"
    root.mkdir()
    (root / "running").touch()

    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root, "--host-commands",
                  "--format", "json")

    [held] = _changes(json.loads(done.out), "file:/etc/queue/queue.conf")
    assert (held["status"], held["severity"]) == ("held", "restart")
    assert not (root / "etc/queue/queue.conf").exists()


def test_a_service_whose_start_is_held_keeps_its_files_held_too(ws: Workspace) -> None:
    restarting = QUEUE.replace('severity="reload"', 'severity="restart"')
    repo = ws.make_repo({"fleet.xml": FLEET, "classes/queue.xml": restarting})
    root = ws.tmp / "node"

    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root, "--host-commands",
                  "--format", "json")

    [held] = _changes(json.loads(done.out), "file:/etc/queue/queue.conf")
    assert (held["status"], held["severity"]) == ("held", "restart")
    assert not (root / "running").exists()


def test_plan_shows_what_added_nodes_get_grouped_like_changes(ws: Workspace) -> None:
    repo = ws.make_repo({"fleet.xml": FLEET, "classes/queue.xml": QUEUE})
    ws.write(repo, {"fleet.xml": FLEET.replace('count="1"', 'count="3"')})
    ws.commit(repo, "two more queues")

    done = ws.cli("plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD")

    assert done.code == EXIT_CHANGES, done.err
    assert "nodes added: 2 nodes: queue-[02-03].shop.lab.t" in done.out
    section = done.out[done.out.index("what the added nodes get"):]
    assert "group 1 of 1: 2 nodes" in section
    assert "+ new file /etc/queue/queue.conf" in section
    assert "+workers = 4" in section
    assert "+ service:queue (reload)" in section
