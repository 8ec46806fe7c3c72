"""A refused source is loud: the node keeps its last good commit, and `run`'s exit code,
its report and `check` say that something was refused. Real git remotes, a real sshd
on loopback with a host key the node does not know."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cycle_support import NODE, Node
from gitutil_repo import free_port, git, wait_for_port

from reconciler.record.report import EXIT_CHANGES, EXIT_REFUSED

pytestmark = pytest.mark.usefixtures("isolated_git")

CRITICAL = 2  # Nagios


@pytest.fixture
def node(tmp_path: Path) -> Node:
    made = Node(tmp_path)
    made.push_base()
    return made


def test_a_force_push_keeps_the_last_good_commit_and_the_run_exits_refused(node: Node) -> None:
    assert node.cli("run").code == EXIT_CHANGES
    node.origin.reset("HEAD")
    git(node.origin.work, "commit", "--quiet", "--amend", "-m", "history rewritten")
    node.origin.push(force=True)

    first = node.cli("run", "--format", "json")
    again = node.cli("run")
    check = node.cli("check")

    report = json.loads(first.out)
    assert first.code == EXIT_REFUSED and report["result"] == "in-sync"
    assert any("force-push or rollback" in p for p in report["problems"])
    assert again.code == EXIT_REFUSED and "source refused" in again.out
    assert check.code == CRITICAL and "refused" in check.out


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[int]:
    """A real sshd on 127.0.0.1 (in its own mount namespace, for its /run/sshd)."""
    if shutil.which("unshare") is None or not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs unshare and openssh-server")
    base = tmp_path / "sshd"
    base.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host")],
                   check=True)
    port = free_port()
    (base / "config").write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base}/host\n"
                                 "PidFile none\nUsePAM no\nStrictModes no\n")
    server = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -D -e -f "$0"',
         str(base / "config")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            wait_for_port(port, 10)
        except OSError:
            server.kill()
            pytest.skip(f"sshd cannot start here: {server.communicate()[1][-300:]!r}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_host_key_failure_reaches_the_report_the_exit_code_and_check(
    node: Node, sshd: int, isolated_git: Path, tmp_path: Path
) -> None:
    assert node.cli("run").code == EXIT_CHANGES
    other = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = isolated_git / ".ssh" / "known_hosts"
    known.parent.mkdir(mode=0o700)
    known.write_text(f"[127.0.0.1]:{sshd} {Path(f'{other}.pub').read_text()}")
    node.write_config(remote=f"ssh://git@127.0.0.1:{sshd}/config.git")

    done = node.cli("run", "--format", "json")
    check = node.cli("check")

    report = json.loads(done.out)
    assert done.code == EXIT_REFUSED, json.dumps(report["source"])
    assert report["source"]["refused"].startswith("the remote's host key is not the one known")
    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"  # last good kept
    assert check.code == CRITICAL and "host key" in check.out
