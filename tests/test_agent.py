"""The real agent as a subprocess against a temporary root and a bare origin."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from agent_support import (
    FILES,
    GREETING,
    STATIC,
    WEB,
    AgentProcess,
    agent_env,
    agent_toml,
    barrier,
    make_origin,
    read,
    wait_until,
)
from clirun import RECONCILER, reconciler
from gate import Gate, gated_command
from gitutil_repo import Origin, git, isolate_git

from reconciler.agent.daemon import EventLog
from reconciler.lock import NodeLock


@pytest.fixture
def home(isolated_git: Path) -> Path:
    return isolated_git


@pytest.fixture
def origin(tmp_path: Path, home: Path) -> Origin:
    return make_origin(tmp_path)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
def root(node: Path) -> Path:
    return node / "root"


@pytest.fixture
def state(node: Path) -> Path:
    return node / "state"


def start(config: Path, home: Path, *args: str) -> AgentProcess:
    """Start the agent and wait for its first full cycle and the watch that follows it."""
    agent = AgentProcess(config, home, *args)
    agent.wait_for("cycle")
    agent.wait_for("watching")
    return agent


@pytest.fixture
def agent_args() -> tuple[str, ...]:
    """Extra command-line arguments of the `agent` fixture (a test overrides it)."""
    return ()


@pytest.fixture
def agent(
    tmp_path: Path, origin: Origin, node: Path, home: Path, agent_args: tuple[str, ...]
) -> Iterator[AgentProcess]:
    """An agent in change mode whose first cycle created the managed files."""
    running = start(agent_toml(tmp_path / "agent.toml", origin, node), home, *agent_args)
    yield running
    running.stop()


class Healer(NamedTuple):
    """An agent in change mode, its root and its state directory."""

    agent: AgentProcess
    root: Path
    state: Path


@pytest.fixture(scope="module")
def shared_healer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Healer]:
    """One agent for the tests that each change the tree by hand and see the agent deal
    with it, leaving the tree as the agent keeps it (an agent's start is half a
    CPU-second of imports and a first cycle)."""
    base = tmp_path_factory.mktemp("healer")
    home = base / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        isolate_git(patch, home)
        origin = make_origin(base)
    running = start(agent_toml(base / "agent.toml", origin, base / "node"), home)
    yield Healer(running, base / "node" / "root", base / "node" / "state")
    running.stop()


@pytest.fixture
def healer(shared_healer: Healer) -> Healer:
    """The shared agent once it has handled everything earlier tests did: a barrier
    (an edit it heals) first, so that a test's events are its own, and the tree as the
    agent keeps it."""
    agent, root, _ = shared_healer
    assert agent.process.poll() is None, f"the shared agent has stopped: {agent.other}"
    barrier(agent, root, "/etc/web/other.conf", agent.mark())
    assert (read(root / "etc/web/app.conf"), read(root / "etc/web/other.conf")) == (
        GREETING, STATIC)
    return shared_healer


def history_results(state: Path) -> list[str]:
    log = git(state / "history", "log", "--format=%(trailers:key=Result,valueonly)")
    return [line for line in log.splitlines() if line]


def test_first_cycle_applies_and_its_own_writes_trigger_no_audit(
    agent: AgentProcess, root: Path
) -> None:
    assert agent.named("cycle")[0]["result"] == "changed"
    assert read(root / "etc/web/app.conf") == GREETING
    last = barrier(agent, root, "/etc/web/other.conf", after=0)
    assert agent.named("watch") == [last]
    assert last["paths"] == ["/etc/web/other.conf"]


def test_hand_edit_is_healed_by_the_watch_in_change_mode(healer: Healer) -> None:
    agent, root, _ = healer
    after = agent.mark()
    (root / "etc/web/app.conf").write_text("edited by hand\n")
    healed = agent.wait_for("watch", after=after)
    assert read(root / "etc/web/app.conf") == GREETING
    assert healed["paths"] == ["/etc/web/app.conf"]
    assert healed["result"] == "changed"
    assert healed["edited_by_hand"] == 1
    barrier(agent, root, "/etc/web/other.conf", after)
    # The heal is the agent's own write: no audit of it follows.
    assert [e["paths"] for e in agent.named("watch", after)] == [
        ["/etc/web/app.conf"], ["/etc/web/other.conf"]]


@pytest.mark.parametrize("agent_args", [("--debounce", "1")])
def test_burst_of_writes_is_one_audit(agent: AgentProcess, root: Path) -> None:
    """Writes within the debounce window (one second here; the burst takes microseconds)
    are one audit of every path they touched."""
    after = agent.mark()
    with (root / "etc/web/app.conf").open("a") as handle:
        for index in range(50):
            handle.write(f"line {index}\n")
            handle.flush()
    (root / "etc/web/other.conf").write_text("edited too\n")
    audit = agent.wait_for("watch", after=after)
    assert audit["paths"] == ["/etc/web/app.conf", "/etc/web/other.conf"]
    assert (read(root / "etc/web/app.conf"), read(root / "etc/web/other.conf")) == (
        GREETING, STATIC)
    last = barrier(agent, root, "/etc/web/app.conf", agent.mark())
    assert agent.named("watch", after) == [audit, last]


def test_deleted_file_is_restored(healer: Healer) -> None:
    agent, root, _ = healer
    after = agent.mark()
    (root / "etc/web/other.conf").unlink()
    assert agent.wait_for("watch", after=after)["paths"] == ["/etc/web/other.conf"]
    assert read(root / "etc/web/other.conf") == STATIC
    assert (root / "etc/web/other.conf").stat().st_mode & 0o777 == 0o600


def test_file_replaced_by_rename_is_healed(healer: Healer) -> None:
    agent, root, _ = healer
    after = agent.mark()
    temp = root / "etc/web/.app.conf.new"
    temp.write_text("replaced wholesale\n")
    os.rename(temp, root / "etc/web/app.conf")
    assert agent.wait_for("watch", after=after)["paths"] == ["/etc/web/app.conf"]
    assert read(root / "etc/web/app.conf") == GREETING


def test_replaced_symlink_and_chmod_of_a_directory_are_healed(healer: Healer) -> None:
    _, root, _ = healer
    link = root / "etc/web/current"
    link.unlink()
    link.symlink_to("/etc/web/other.conf")
    (root / "etc/web").chmod(0o700)
    assert wait_until(lambda: os.readlink(link) == "/etc/web/app.conf")
    assert wait_until(lambda: (root / "etc/web").stat().st_mode & 0o777 == 0o755)


def test_unmanaged_files_beside_managed_ones_are_ignored(healer: Healer) -> None:
    agent, root, _ = healer
    after = agent.mark()
    (root / "etc/web/notes.txt").write_text("mine\n")
    os.rename(root / "etc/web/notes.txt", root / "etc/web/notes.old")
    last = barrier(agent, root, "/etc/web/other.conf", after)
    assert agent.named("watch", after) == [last]
    assert last["paths"] == ["/etc/web/other.conf"]


def test_audit_mode_records_the_edit_in_history_and_leaves_it(
    tmp_path: Path, origin: Origin, node: Path, home: Path, root: Path, state: Path
) -> None:
    config = agent_toml(tmp_path / "agent.toml", origin, node, mode="audit")
    reconciler(["run", "--config", config, "--mode", "change"], env=agent_env(home))
    agent = start(config, home)
    try:
        assert agent.named("cycle")[0]["result"] == "in-sync"
        after = agent.mark()
        (root / "etc/web/app.conf").write_text("edited by hand\n")
        seen = agent.wait_for("watch", after=after)
        assert seen["result"] == "drift"
        assert seen["edited_by_hand"] == 1
        assert read(root / "etc/web/app.conf") == "edited by hand\n"
        assert history_results(state)[0] == "drift"
        assert git(state / "history", "show", "HEAD:etc/web/app.conf") == "edited by hand"
    finally:
        assert agent.stop() == 0


def test_pushed_commit_is_applied_on_sigusr1_and_the_watch_follows_it(
    agent: AgentProcess, origin: Origin, root: Path
) -> None:
    web = WEB.replace(
        '<file path="/etc/web/other.conf" mode="0600"><content>static\n</content></file>',
        '<file path="/etc/web/new.conf" mode="0644"><content>new\n</content></file>',
    )
    commit = origin.commit({"classes/web.xml": web,
                            "templates/web/app.conf.j2": "bonjour {{ node.name }}\n"}, "v2")
    after = agent.mark()
    agent.send(signal.SIGUSR1)
    cycle = agent.wait_for("cycle", after=after)
    assert cycle["trigger"] == "signal"
    assert cycle["commit"] == commit[:12]
    assert (cycle["applied"], cycle["orphans"]) == (2, 1)
    assert cycle["result"] == "held"  # the orphan: reported, not removed without prune
    assert read(root / "etc/web/app.conf") == "bonjour web-01.tickets.chi1.sa\n"
    assert read(root / "etc/web/new.conf") == "new\n"
    after = agent.mark()
    (root / "etc/web/other.conf").write_text("no longer managed\n")
    (root / "etc/web/new.conf").write_text("edited\n")
    assert agent.wait_for("watch", after=after)["paths"] == ["/etc/web/new.conf"]
    assert read(root / "etc/web/new.conf") == "new\n"
    barrier(agent, root, "/etc/web/app.conf", after)
    assert [e["paths"] for e in agent.named("watch", after)] == [
        ["/etc/web/new.conf"], ["/etc/web/app.conf"]]
    assert read(root / "etc/web/other.conf") == "no longer managed\n"


def test_sighup_rereads_agent_toml(
    tmp_path: Path, agent: AgentProcess, origin: Origin, node: Path, root: Path
) -> None:
    agent_toml(tmp_path / "agent.toml", origin, node, mode="audit")
    after = agent.mark()
    agent.send(signal.SIGHUP)
    assert agent.wait_for("reload", after=after)["changed"] == ["mode"]
    (root / "etc/web/app.conf").write_text("edited by hand\n")
    assert agent.wait_for("watch", after=after)["result"] == "drift"
    assert read(root / "etc/web/app.conf") == "edited by hand\n"


def test_bad_agent_toml_on_sighup_keeps_the_old_settings(
    tmp_path: Path, agent: AgentProcess, root: Path
) -> None:
    (tmp_path / "agent.toml").write_text('remote = "file:///x"\nbogus = 1\n')
    after = agent.mark()
    agent.send(signal.SIGHUP)
    failed = agent.wait_for("reload-failed", after=after)
    assert "bogus: unknown key" in failed["error"]
    (root / "etc/web/app.conf").write_text("edited by hand\n")
    assert wait_until(lambda: read(root / "etc/web/app.conf") == GREETING)


def test_watch_audit_waits_while_another_run_holds_the_node_lock(healer: Healer) -> None:
    agent, root, state = healer
    after = agent.mark()
    with NodeLock(state / "lock"):
        (root / "etc/web/app.conf").write_text("edited by hand\n")
        assert agent.wait_for("busy", after=after)["scope"] == "watch"
        assert read(root / "etc/web/app.conf") == "edited by hand\n"
    assert agent.wait_for("watch", after=after)["paths"] == ["/etc/web/app.conf"]
    assert read(root / "etc/web/app.conf") == GREETING


def test_metrics_file_follows_every_run(agent: AgentProcess, root: Path, state: Path) -> None:
    prom = state / "reconciler.prom"
    assert "reconciler_last_run_partial 0" in prom.read_text()
    assert 'reconciler_last_run_result{result="changed"} 1' in prom.read_text()
    after = agent.mark()
    (root / "etc/web/app.conf").write_text("edited by hand\n")
    agent.wait_for("watch", after=after)
    text = prom.read_text()
    assert "reconciler_last_run_partial 1" in text
    assert 'reconciler_last_run_count{state="edited_by_hand"} 1' in text


SLOW = """\
<class name="web">
  <command name="slow" run="{run}" severity="none"/>
  <file path="/etc/web/app.conf" template="web/app.conf.j2" requires="command:slow"/>
</class>
"""


def test_sigterm_mid_cycle_records_interrupted_with_clean_history_and_no_lock(
    tmp_path: Path, home: Path, node: Path, root: Path, state: Path, gate: Gate
) -> None:
    marker = tmp_path / "command-started"
    slow = SLOW.format(run=gated_command(marker, gate))
    origin = make_origin(tmp_path, {**FILES, "classes/web.xml": slow})
    agent = AgentProcess(agent_toml(tmp_path / "agent.toml", origin, node), home,
                         "--host-commands")
    assert wait_until(marker.exists)
    agent.send(signal.SIGTERM)
    gate.open()  # the signal is already pending: the command's step ends after it
    assert agent.stop(timeout=30) == 0
    cycle = agent.named("cycle")[0]
    assert cycle["result"] == "interrupted"
    assert agent.named("stop")
    assert not (root / "etc/web/app.conf").exists()
    assert history_results(state) == ["interrupted"]
    git(state / "history", "fsck", "--strict")
    lock = NodeLock(state / "lock")
    lock.acquire(wait=0)
    lock.release()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_idle_agent_stops_with_exit_0(agent: AgentProcess, signum: signal.Signals) -> None:
    after = agent.mark()
    agent.send(signum)
    assert agent.process.wait(timeout=30) == 0
    agent.stop()
    assert [e["name"] for e in agent.named("signal", after)] == [signum.name]
    assert agent.named("stop")


def test_manual_trigger_waits_while_another_run_holds_the_node_lock(healer: Healer) -> None:
    agent, _, state = healer
    after = agent.mark()
    with NodeLock(state / "lock"):
        agent.send(signal.SIGUSR1)
        busy = agent.wait_for("busy", after=after)
    assert busy["scope"] == "cycle"
    assert "another run holds the node lock" in busy["holder"]
    assert agent.wait_for("cycle", after=after)["trigger"] == "retry"


def test_text_log_lines_are_one_event_of_key_value_pairs() -> None:
    stream = io.StringIO()
    EventLog("text", stream)("watch", paths=["/etc/a b", "/etc/c"], result="changed",
                             skipped=None)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert re.fullmatch(r"\S+Z info watch paths=\"/etc/a b,/etc/c\" result=changed\n", line)


def test_install_units_fills_in_the_command_and_config_paths(tmp_path: Path) -> None:
    done = reconciler(["install-units", "--dest", tmp_path / "units", "--exec", RECONCILER,
                       "--config", "/srv/agent.toml"])
    assert done.returncode == 0, done.stderr
    units = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert units == ["reconciler-agent.service", "reconciler-run.service",
                     "reconciler-run.timer"]
    agent_unit = (tmp_path / "units/reconciler-agent.service").read_text()
    assert f"ExecStart={RECONCILER} agent --config /srv/agent.toml\n" in agent_unit
    assert "Restart=on-failure" in agent_unit
    assert "RandomizedDelaySec=" in (tmp_path / "units/reconciler-run.timer").read_text()
    assert all((tmp_path / "units" / u).stat().st_mode & 0o777 == 0o644 for u in units)
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify",
                                 *(str(tmp_path / "units" / u) for u in units)],
                                capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr


def test_install_units_refuses_a_relative_command(tmp_path: Path) -> None:
    done = reconciler(["install-units", "--dest", tmp_path, "--exec", "bin/reconciler"])
    assert done.returncode == 1
    assert done.stderr == "error: --exec must be an absolute path without spaces: " \
        "'bin/reconciler'\n"
    assert list(tmp_path.iterdir()) == []
