"""Ctrl-C and SIGTERM, as an operator meets them: one exit code for an interrupted run in
every place that reports it, a stop honoured between the files of a large tree, and no
traceback when the command is interrupted while it is still starting up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from clirun import RECONCILER
from cycle_support import BASE_FILES, NODE, Node, web_class
from fleet_support import wait_until

pytestmark = pytest.mark.usefixtures("isolated_git")

FILES = 3000
INTERRUPTED = 128 + signal.SIGINT


def _site(tmp_path: Path, files: int) -> Node:
    """A node whose class renders a tree of `files` files into /srv/site."""
    node = Node(tmp_path)
    pages = {f"templates/web/site/page-{n:04d}.html": f"page {n}\n" for n in range(files)}
    node.push({**BASE_FILES, **pages, "classes/web.xml": web_class(
        '  <tree path="/srv/site" source="web/site"/>\n')}, "a large site")
    return node


@pytest.fixture
def big_tree(tmp_path: Path) -> Node:
    return _site(tmp_path, FILES)


def test_ctrl_c_stops_a_large_tree_after_the_current_file_with_one_exit_code(
    big_tree: Node,
) -> None:
    site = big_tree.root / "srv/site"
    process = big_tree.start("run")
    wait_until(lambda: site.is_dir() and any(site.iterdir()), 120, "a first file of the tree")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)

    written = len(list(site.iterdir()))
    assert process.returncode == INTERRUPTED, err
    assert "SIGINT: stopping after the current file" in err
    assert "Traceback" not in err
    assert written < FILES
    assert out.strip().splitlines()[-1].startswith(f"interrupted (exit {INTERRUPTED}): ")
    assert big_tree.last_run()["result"] == "interrupted"
    assert big_tree.last_run()["exit_code"] == INTERRUPTED
    assert big_tree.trailers()["Result"] == "interrupted"
    assert f"interrupted (exit {INTERRUPTED})" in big_tree.cli("status").out
    status = json.loads(big_tree.cli("status", "--format", "json").out)
    assert status["last_run"]["exit_code"] == INTERRUPTED
    metrics = (big_tree.state / "reconciler.prom").read_text()
    assert f"reconciler_last_run_exit_code {INTERRUPTED}" in metrics


def test_the_run_after_an_interrupted_one_writes_the_rest(tmp_path: Path) -> None:
    tree = _site(tmp_path, FILES // 5)
    site = tree.root / "srv/site"
    process = tree.start("run")
    wait_until(lambda: site.is_dir() and any(site.iterdir()), 120, "a first file of the tree")
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)

    done = tree.cli("run")

    assert process.returncode == 128 + signal.SIGTERM
    assert done.code == 2, done.err
    assert len(list(site.iterdir())) == FILES // 5


def _importing_the_commands(pid: int) -> bool:
    """The process has loaded pydantic's extension: it is importing reconciler's commands
    (past the interpreter's own start-up, before any command runs)."""
    try:
        return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()
    except FileNotFoundError:
        return False


def _sigint_as_at_a_terminal() -> None:
    """SIGINT with its default action, as a command typed at a terminal gets it: a suite
    started in the background (a CI job, `cmd &`) hands its children SIGINT ignored, and
    Python then leaves it ignored, so the command would wait on its settings for ever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path: Path) -> None:
    settings = tmp_path / "agent.toml"
    os.mkfifo(settings)  # never written: a command that got this far would wait here
    process = subprocess.Popen([RECONCILER, "status", "--config", str(settings), "--node", NODE],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_sigint_as_at_a_terminal)
    wait_until(lambda: _importing_the_commands(process.pid) or process.poll() is not None,
               120, "loading the commands")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert (process.returncode, out) == (INTERRUPTED, "")
    assert "Traceback" not in err
    assert err.strip() == "interrupted"


_READ = {"x86_64": "0", "aarch64": "63"}  # read(2)'s number in /proc/PID/syscall


def _waiting_in_read(pid: int, path: Path) -> bool:
    """The process is blocked in read(2) on `path` (elsewhere: in any call on it; where
    /proc/PID/syscall is not ours to read, as under Yama's ptrace_scope 2: once it has
    the FIFO open, as before)."""
    try:
        call = Path(f"/proc/{pid}/syscall").read_text().split()
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        number, fd = call[:2]
        return number == _READ.get(os.uname().machine, number) and \
            os.readlink(f"/proc/{pid}/fd/{int(fd, 16)}") == str(path)
    except (OSError, ValueError):
        return False


def _writer_once_read(fifo: Path) -> int | None:
    """The write end of `fifo` once a process has opened it to read (None until then: a
    FIFO without a reader refuses a writer that will not wait). The reader then waits for
    data that never comes."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def test_ctrl_c_while_a_command_waits_exits_130_not_click_s_aborted(tmp_path: Path) -> None:
    settings = tmp_path / "agent.toml"
    os.mkfifo(settings)
    process = subprocess.Popen([RECONCILER, "status", "--config", str(settings), "--node", NODE],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_sigint_as_at_a_terminal)
    writer: list[int] = []

    def reading() -> bool:
        fd = _writer_once_read(settings)
        if fd is not None:
            writer.append(fd)
        return bool(writer) or process.poll() is not None

    wait_until(reading, 120, "the command reading its settings")
    # A signal that lands between the open and the read is seen by Python only once the
    # read returns, which it never does here: Ctrl-C is pressed while the command waits.
    wait_until(lambda: _waiting_in_read(process.pid, settings) or process.poll() is not None,
               120, "the command waiting for its settings")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    os.close(writer[0])

    assert (process.returncode, out, err.strip()) == (INTERRUPTED, "", "interrupted")
