"""`rollback` pins only a rollback that applied, `--release` takes effect at once, and
`status` writes every time the same readable way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cycle_support import BASE_FILES, NODE, Node, web_class

from reconciler.record.report import EXIT_CHANGES, EXIT_HELD

pytestmark = pytest.mark.usefixtures("isolated_git")

REBOOTING = web_class('  <file path="/etc/x" template="web/x.j2" severity="reboot"/>\n')


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_a_rollback_that_was_held_does_not_pin_the_node(node: Node) -> None:
    older = node.push({**BASE_FILES, "classes/web.xml": REBOOTING}, "x needs a reboot")
    node.cli("run", "--max-severity", "reboot")
    node.push({"templates/web/x.j2": "newer\n"}, "newer x")
    node.cli("run", "--max-severity", "reboot")

    done = node.cli("rollback", "--to", older[:10])
    status = node.cli("status")

    assert done.code & EXIT_HELD, done.out
    assert (node.root / "etc/x").read_text() == "newer\n"
    assert f"rollback to {older[:12]} was not applied (held): the node is not pinned" in done.out
    assert "PINNED" not in status.out
    assert node.source_state()["pinned"] is None


def test_a_rollback_that_applied_pins_the_node(node: Node) -> None:
    older = node.push_base()
    node.run()
    node.push({"templates/web/x.j2": "newer\n"}, "newer x")
    node.run()

    done = node.cli("rollback", "--to", older[:10])

    assert done.code == EXIT_CHANGES, done.out
    assert f"pinned to {older[:12]} until `reconciler rollback --release`" in done.out
    assert node.source_state()["pinned"]["commit"] == older


def test_release_follows_the_branch_at_once_and_status_says_so(node: Node) -> None:
    older = node.push_base()
    node.run()
    newest = node.push({"templates/web/x.j2": "newest\n"}, "newest x")
    node.cli("rollback", "--to", older[:10])

    done = node.cli("rollback", "--release")
    status = node.cli("status")

    assert done.code == EXIT_CHANGES, done.out
    assert f"released the pin on {older[:12]}: following main again" in done.out
    assert (node.root / "etc/x").read_text() == "newest\n"
    assert "pinned" not in status.out.lower()
    assert f"config      {newest[:12]} newest x" in status.out


def test_status_times_read_alike(node: Node) -> None:
    older = node.push_base()
    node.run()
    node.push({"classes/web.xml": "<class name='web'><nope/></class>\n"}, "broken")
    node.run()
    node.cli("rollback", "--to", older[:10])

    status = node.cli("status").out

    assert not re.search(r"\d\d:\d\d:\d\d\.\d|T\d\d:\d\d|\+00:00", status), status
    stamps = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(([^)]*)\)", status)
    assert len(stamps) >= 4, status
    assert all(re.fullmatch(r"(\d+[dhms] ?)+ ago", ago) for ago in stamps), stamps
    assert NODE in status
