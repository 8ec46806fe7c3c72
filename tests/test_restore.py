"""`reconciler restore PATH`: what the backups keep of a path, indexed by time and run, and
putting one version back atomically; a secret file kept sealed to the node's own key
and restored without its plain text being written anywhere else."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from clirun import reconciler
from cycle_support import BASE_FILES, SECRET, Node

from reconciler.secrets import age

pytestmark = pytest.mark.usefixtures("isolated_git")

HAND_EDIT = "tuned on the box at 3 a.m.\n"


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """A node built from git whose /etc/x was edited by hand, then overwritten by a run."""
    key = tmp_path / "age.key"
    age.write_identity(str(key), age.generate(), "node key")
    node = Node(tmp_path)
    node.write_config(identity=str(key))
    node.push_base()
    node.cli("run")
    (node.root / "etc/x").write_text(HAND_EDIT)
    node.cli("run")
    return node


def restore(node: Node, *args: str | Path) -> tuple[int, str, str]:
    done = reconciler(["restore", *args, "--root", node.root, "--state-dir", node.state,
                       "--identity", node.tmp / "age.key"])
    return done.returncode, done.stdout, done.stderr


def _last_run(node: Node) -> str:
    return node.cli("log", "-n", "1").out.split()[0]


def test_restore_lists_what_is_kept_of_a_path(node: Node) -> None:
    code, out, err = restore(node, "/etc/x")

    assert (code, err) == (0, "")
    [line] = out.splitlines()
    assert line.endswith(f"sha256 {hashlib.sha256(HAND_EDIT.encode()).hexdigest()}")
    assert " UTC  run " in line


def test_restore_before_a_run_puts_back_what_it_overwrote(node: Node) -> None:
    code, out, err = restore(node, "/etc/x", "--before", _last_run(node))

    assert (code, err) == (0, "")
    assert out.startswith("restored /etc/x as it was at ")
    assert (node.root / "etc/x").read_text() == HAND_EDIT
    assert len(restore(node, "/etc/x")[1].splitlines()) == 2  # the replaced one is kept too
    assert node.cli("run", "--mode", "audit", "--format", "json").code == 2


def test_restore_at_a_time_takes_the_newest_version_kept_by_then(node: Node) -> None:
    code, _, err = restore(node, "/etc/x", "--at", "2999-01-01 00:00")

    assert (code, err) == (0, "")
    assert (node.root / "etc/x").read_text() == HAND_EDIT


def test_nothing_kept_or_too_early_is_a_clear_refusal(node: Node) -> None:
    code, _, err = restore(node, "/etc/never")
    assert code == 1 and err.startswith("error: no backup of /etc/never is kept under ")

    code, _, err = restore(node, "/etc/x", "--at", "2001-01-01")
    assert code == 1 and "no backup of /etc/x was kept at or before 2001-01-01" in err


def test_a_secret_file_is_kept_sealed_and_restored_without_plain_text(node: Node) -> None:
    node.push({"fleet.xml": BASE_FILES["fleet.xml"].replace(SECRET, "password=new-one")})
    node.cli("run")
    [line] = restore(node, "/etc/app/secret.ini")[1].splitlines()

    code, _, err = restore(node, "/etc/app/secret.ini", "--before", _last_run(node))

    assert "secret (sealed)" in line and "sha256" not in line
    assert (code, err) == (0, "")
    assert (node.root / "etc/app/secret.ini").read_text() == f"{SECRET}\n"
    assert (node.root / "etc/app/secret.ini").stat().st_mode & 0o777 == 0o600
    kept = [p for p in node.state.rglob("*") if p.is_file()]
    assert not any(SECRET.encode() in p.read_bytes() for p in kept)
    assert not any(b"password=new-one" in p.read_bytes() for p in kept)
