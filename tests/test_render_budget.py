"""Rendering is held to a CPU and memory budget in a child process, and a stop signal
always ends it: real `reconciler run` and agent processes, real signals, real limits."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from configrepo import BASIC, Workspace, fleet_xml
from cycle_support import BASE_FILES, Node, web_class
from fleet_support import wait_until

from reconciler.lock import NodeLock
from reconciler.render import budget

FOREVER = ("{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}"
           "{% endfor %}{% endfor %}{% endfor %}\n")
HUGE = "{{ 'a'|center(10**9) }}\n"
# The review's budget is a profiling timer, not a whole-second rlimit: a quarter of a
# second is enough to see it stop a render, and each test burns only that.
REVIEW_BUDGET = 0.25
# BASIC with one node: the review spends the whole budget on every node that renders FOREVER.
ONE_NODE = {**BASIC, "fleet.xml": fleet_xml(
    '  <nodes class="web" product="tickets" cluster="chi1" count="1"/>\n')}


def node_with(tmp_path: Path, template: str, **settings: Any) -> Node:
    node = Node(tmp_path)
    node.write_config(**settings)
    node.push({**BASE_FILES, "classes/web.xml": web_class(
        '  <file path="/etc/x" template="web/x.j2"/>\n'), "templates/web/x.j2": template})
    return node


def render_child(parent: int) -> int | None:
    """The forked child of `parent` that renders, if there is one: same command line and
    held to a CPU limit (a fork on its way to exec git has the command line, not the
    limit)."""
    own = Path(f"/proc/{parent}/cmdline").read_bytes()
    for task in Path(f"/proc/{parent}/task").iterdir():
        try:  # a thread of the agent (git's reader, the pusher) may end while it is read
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for pid in children:
            try:
                if (Path(f"/proc/{pid}/cmdline").read_bytes() == own
                        and _cpu_limited(Path(f"/proc/{pid}/limits").read_text())):
                    return int(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
    return None


def _cpu_limited(limits: str) -> bool:
    line = next(line for line in limits.splitlines() if line.startswith("Max cpu time"))
    return line.split()[3] != "unlimited"


def wait_for_render_child(parent: int, what: str) -> int:
    """The render child of `parent`, once there is one: the very child that was seen (a
    second look could miss it, or find it gone)."""
    seen: list[int] = []

    def found() -> bool:
        child = render_child(parent)
        seen.extend([child] if child is not None else [])
        return child is not None

    wait_until(found, 60, what)
    return seen[-1]


def lock_is_free(node: Node) -> bool:
    lock = NodeLock(node.state / "lock")
    try:
        lock.acquire(wait=0)
    except Exception:  # the lock is held: RetryLater
        return False
    lock.release()
    return True


def test_a_template_that_never_ends_is_refused_at_its_cpu_budget(tmp_path: Path) -> None:
    node = node_with(tmp_path, FOREVER, **{"render-cpu": 1})
    done = node.cli("run")
    assert done.code == 1, done.out + done.err
    assert "more than its budget of 1 s of CPU" in done.out + done.err
    assert "Traceback" not in done.err
    assert not (node.root / "etc/x").exists()


def test_a_huge_padding_is_a_clean_error_not_a_memory_error_traceback(tmp_path: Path) -> None:
    node = node_with(tmp_path, HUGE, **{"render-memory": 256})
    done = node.cli("run")
    assert done.code == 1, done.out + done.err
    assert "memory" in done.out + done.err and "Traceback" not in done.out + done.err
    assert not (node.root / "etc/x").exists()


def test_a_budget_overrun_refuses_the_tip_and_keeps_the_last_good_commit(tmp_path: Path) -> None:
    node = node_with(tmp_path, "fine\n", **{"render-cpu": 1})
    assert node.cli("run").code == 2
    node.push({"templates/web/x.j2": FOREVER})
    done = node.cli("run", "--format", "json")
    assert "more than its budget of 1 s of CPU" in done.out
    assert (node.root / "etc/x").read_text() == "fine\n"


def test_sigterm_stops_a_run_that_is_rendering_forever_and_frees_the_lock(
    tmp_path: Path,
) -> None:
    node = node_with(tmp_path, FOREVER)
    process = node.start("run")
    child = wait_for_render_child(process.pid, "rendering started")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, out + err
    assert "Traceback" not in err
    assert not Path(f"/proc/{child}").exists()
    assert lock_is_free(node)


def test_the_agent_honours_sigterm_while_a_template_renders_forever(tmp_path: Path) -> None:
    node = node_with(tmp_path, FOREVER, interval=3600, splay=0)  # the first cycle at once
    agent = node.start("agent")
    child = wait_for_render_child(agent.pid, "the agent renders")
    agent.send_signal(signal.SIGTERM)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, out + err
    assert not Path(f"/proc/{child}").exists()
    assert lock_is_free(node)
    # The commit was not refused: the stop was not the commit's fault.
    memory = node.state / "source-state.json"
    assert not memory.exists() or '"refused": null' in memory.read_text()


def test_the_budget_is_per_node_run_not_per_file(tmp_path: Path) -> None:
    """Many files render in one child: a fleet of cheap templates stays in budget."""
    actions = "".join(f'  <file path="/etc/many/{i}" template="web/x.j2"/>\n' for i in range(50))
    node = Node(tmp_path)
    budget_settings: dict[str, Any] = {"render-cpu": 5}
    node.write_config(**budget_settings)
    node.push({**BASE_FILES, "classes/web.xml": web_class(actions)})
    assert node.cli("run").code == 2
    assert len(os.listdir(node.root / "etc/many")) == 50


def test_validate_refuses_a_template_that_never_ends_at_its_cpu_budget(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "REVIEW_CPU_SECONDS", REVIEW_BUDGET)
    repo = ws.make_repo({**ONE_NODE, "templates/base/motd.j2": FOREVER})
    done = ws.cli("validate", "--repo", repo)
    assert done.code == 1 and "Traceback" not in done.err
    assert "rendering took more than its budget of 0.25 s of CPU" in done.out + done.err


def test_plan_refuses_a_template_that_never_ends_at_its_cpu_budget(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "REVIEW_CPU_SECONDS", REVIEW_BUDGET)
    repo = ws.make_repo(ONE_NODE)
    ws.write(repo, {"templates/base/motd.j2": FOREVER})
    ws.commit(repo, "a loop without end")
    done = ws.cli("plan", "--repo", repo, "--base", "HEAD~1")
    assert done.code not in (0, 2) and "Traceback" not in done.err
    assert "budget of 0.25 s of CPU" in done.out + done.err
