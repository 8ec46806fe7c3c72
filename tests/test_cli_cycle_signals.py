"""A `reconciler run` process meets another run or a signal: it waits for the lock and
names its holder, SIGTERM ends the wait, SIGTERM or SIGINT mid-run is recorded as an
interrupted run that frees the lock, and after a SIGKILL the next run converges with a
clean history."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from clirun import RECONCILER
from cycle_support import (
    BASE_ACTIONS,
    Node,
    lock_holder,
    stop,
    wait_for,
    web_class,
)
from fleet_support import wait_until
from gate import Gate, gated_command

from reconciler.record.report import EXIT_CHANGES, EXIT_REFUSED

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_second_run_waits_then_names_the_lock_holder(node: Node) -> None:
    node.push_base()
    ready = node.tmp / "holding"
    holder = lock_holder(node.state / "lock", ready)
    try:
        wait_for(ready)
        done = node.cli("run", "--wait", "0.5")
    finally:
        stop(holder)

    assert done.code == EXIT_REFUSED
    assert f"another run holds the node lock: pid {holder.pid}" in done.err
    assert not node.root.exists() or not any(node.root.iterdir())


def _wait_until_it_opens(process: subprocess.Popen[str], path: Path) -> None:
    """Block until `process` has `path` open (it reached the point of using it)."""
    fds = Path(f"/proc/{process.pid}/fd")

    def opened() -> bool:
        assert process.poll() is None, process.returncode
        return any(_link(fd) == str(path) for fd in fds.iterdir())

    wait_until(opened, 20, f"the process opening {path}")


def _link(fd: Path) -> str | None:
    try:
        return os.readlink(fd)
    except OSError:
        return None


def test_sigterm_while_waiting_for_the_lock_stops_the_wait(node: Node) -> None:
    node.push_base()
    ready = node.tmp / "holding"
    holder = lock_holder(node.state / "lock", ready)
    try:
        wait_for(ready)
        waiting = node.start("run", "--wait", "3600")
        _wait_until_it_opens(waiting, node.state / "lock")
        waiting.send_signal(signal.SIGTERM)
        _, err = waiting.communicate(timeout=60)  # far less than the hour it would wait
    finally:
        stop(holder)

    assert waiting.returncode == EXIT_REFUSED
    assert f"another run holds the node lock: pid {holder.pid}" in err


def _gated_commands(node: Node, gate: Gate) -> str:
    """A commit whose first command marks /started and waits at `gate`; the second marks
    /after."""
    slow = gated_command("started", gate)
    return node.push({"classes/web.xml": web_class(
        BASE_ACTIONS +
        f'  <command name="slow" run="{slow}" unless="test -e started"/>\n'
        '  <command name="after" run="touch after" creates="/after"/>\n'
    )}, "slow command")  # fmt: skip


def test_sigkill_mid_run_then_a_run_converges_with_a_clean_history(
    node: Node, gate: Gate
) -> None:
    node.push_base()
    node.run()
    started, after = node.root / "started", node.root / "after"
    _gated_commands(node, gate)
    process = subprocess.Popen(
        [*_run_argv(node), "--host-commands"], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(started)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    gate.open()  # the command outlived its run (it has a session of its own): let it end

    done = node.cli("run", "--host-commands")
    again = node.run(host_commands=True)

    assert process.returncode == -signal.SIGKILL
    assert done.code == EXIT_CHANGES, done.err
    assert after.exists()
    assert again.exit_code == 0
    fsck = subprocess.run(["git", "-C", str(node.history), "fsck", "--strict"],
                          capture_output=True, text=True, check=False)
    assert (fsck.returncode, fsck.stderr) == (0, "")
    assert len(node.history_commits()) == 2


def _run_argv(node: Node) -> list[str]:
    return [RECONCILER, "run", "--config", str(node.config)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_mid_run_records_an_interrupted_run_and_releases_the_lock(
    node: Node, gate: Gate, signum: signal.Signals
) -> None:
    node.push_base()
    node.run()
    started, after = node.root / "started", node.root / "after"
    commit = _gated_commands(node, gate)
    process = node.start("run", "--host-commands")
    wait_for(started)
    process.send_signal(signum)
    gate.open()  # the signal is already pending: the command's step ends after it
    out, err = process.communicate(timeout=60)

    assert process.returncode == 128 + signum, err
    assert "interrupted" in out
    assert not after.exists()
    assert node.last_run()["result"] == "interrupted"
    assert node.trailers()["Result"] == "interrupted"
    assert node.trailers()["Config-Commit"] == commit
    assert node.run(host_commands=True).exit_code == EXIT_CHANGES
    assert after.exists()
