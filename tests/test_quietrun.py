"""A quiet `reconciler run` as a whole process (quietrun.py): with agent.toml, the tip
and every managed path as the last run in sync left them, the run is answered before
the engine is imported, and recorded; anything that differs takes the full run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cycle_support import NODE, Done, Node
from gitutil_repo import free_port, git_daemon
from nginx_support import Nginx, serving_tips
from test_quiet_run import PLAIN_FILES

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node in sync with its config, served by git daemon, after two full runs in this
    process (the second one, in sync, leaves the quiet run's record)."""
    node = Node(tmp_path)
    node.push(PLAIN_FILES, "plain files")
    with git_daemon(node.origin.bare.parent) as port:
        node.write_config(f"git://127.0.0.1:{port}/{node.origin.bare.name}")
        assert node.cli("run").code == 2
        assert node.cli("run").code == 0
        yield node


def quiet_run(node: Node) -> tuple[Done, bool]:
    """`reconciler run` as a process, and whether it loaded the engine (pydantic)."""
    os.environ["PYTHONPROFILEIMPORTTIME"] = "1"
    try:
        done = node.cli("run", process=True)
    finally:
        del os.environ["PYTHONPROFILEIMPORTTIME"]
    return done, " pydantic\n" in done.err


def test_a_quiet_run_is_answered_without_the_engine_and_recorded(node: Node) -> None:
    before = node.last_run()

    done, engine = quiet_run(node)

    assert (done.code, engine) == (0, False)
    commit = before["config_commit"]
    assert done.out.splitlines()[0] == (
        f"{NODE} — apply (mode set by the built-in default) at {commit[:12]}, ceiling "
        f"restart, root {node.root}")
    assert done.out.splitlines()[1].startswith("in-sync (exit 0): 3 in sync in ")
    after = node.last_run()
    assert after["started"] != before["started"]
    assert (after["result"], after["config_commit"]) == ("in-sync", commit)
    assert after["source"]["tip"] == commit
    assert after["source"]["subject"] == "plain files"


def test_a_moved_tip_takes_the_full_run(node: Node) -> None:
    newer = node.push({"templates/web/x.j2": "moved on\n"}, "newer")

    done, engine = quiet_run(node)

    assert (done.code, engine) == (2, True)
    assert node.last_run()["config_commit"] == newer


def test_a_hand_edit_takes_the_full_run_which_repairs_it(node: Node) -> None:
    (node.root / "etc/app/app.conf").write_text("workers = 64\n")

    done, engine = quiet_run(node)

    assert (done.code, engine) == (2, True)
    assert (node.root / "etc/app/app.conf").read_text() == "workers = 4\n"


def test_edited_settings_take_one_full_run_then_quiet_again(node: Node) -> None:
    node.config.write_text(node.config.read_text() + "# reviewed\n")

    first, first_engine = quiet_run(node)
    second, second_engine = quiet_run(node)

    assert (first.code, first_engine) == (0, True)
    assert (second.code, second_engine) == (0, False)


def test_a_run_with_a_setting_flag_takes_the_full_run(node: Node) -> None:
    done = node.cli("run", "--format", "json", process=True)

    assert done.code == 0
    assert json.loads(done.out)["result"] == "in-sync"
    assert (node.state / "quiet-run.json").exists()


def test_an_unreachable_remote_takes_the_full_run_which_reports_it(node: Node) -> None:
    node.write_config(f"git://127.0.0.1:{free_port()}/config.git")
    assert node.cli("run").code == 0  # new settings: a full run, stale
    assert node.last_run()["source"]["stale"] is not None

    done, engine = quiet_run(node)

    assert (done.code, engine) == (0, True)
    assert node.last_run()["source"]["stale"] is not None


@pytest.fixture
def served(node: Node) -> Iterator[Nginx]:
    """The tip file published by the hook and served by nginx, in the node's settings."""
    with serving_tips(node.origin.bare, node.tmp / "nginx") as nginx:
        node.push({"templates/web/x.j2": "published\n"}, "published")
        yield nginx


def test_with_the_tip_file_a_quiet_run_asks_nginx_only(node: Node, served: Nginx) -> None:
    tip_url = served.url(f"{node.origin.bare.name}/reconciler-tip")
    node.write_config(node.origin.url, **{"tip-url": tip_url})
    assert node.cli("run").code == 2  # the new commit, from git
    assert node.cli("run").code == 0  # in sync: the record
    node.write_config(f"git://127.0.0.1:{free_port()}/config.git", **{"tip-url": tip_url})
    assert node.cli("run").code == 0  # new settings: full, git not asked

    done, engine = quiet_run(node)

    assert (done.code, engine) == (0, False)
    assert node.last_run()["source"]["remote"].endswith("/reconciler-tip")
    assert served.answers()[-1].startswith("304 ")
