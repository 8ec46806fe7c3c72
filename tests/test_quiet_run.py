"""`reconciler run` on the quiet cycle: at the commit of the last settled run, with every
managed path as that run left it, the run is in sync without compiling; a new commit,
a hand edit or a config the quiet cycle cannot check takes the full run."""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_support import BASE_FILES, NODE, Node, web_class
from gitutil_repo import allowed_signers, ssh_key, ssh_signing
from quiet_support import count_compiles

PLAIN = """\
  <directory path="/etc/app" mode="0755"/>
  <file path="/etc/x" template="web/x.j2"/>
  <file path="/etc/app/app.conf" mode="0640"><content>workers = 4
</content></file>
"""
PLAIN_FILES = {**BASE_FILES, "classes/web.xml": web_class(PLAIN)}


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return count_compiles(monkeypatch)


def test_a_run_at_the_same_commit_with_nothing_changed_does_not_compile(
    node: Node, compiles: list[str]
) -> None:
    commit = node.push(PLAIN_FILES, "plain files")
    assert node.run().result == "changed"
    first = node.last_run()["started"]

    report = node.run()

    assert (report.result, report.exit_code, report.config_commit) == ("in-sync", 0, commit)
    assert report.counts.in_sync == 3
    assert len(compiles) == 1, "only the first run compiled"
    assert node.last_run()["started"] != first, "the quiet run is recorded for monitoring"
    assert node.last_run()["result"] == "in-sync"


def test_a_new_commit_takes_the_full_run(node: Node, compiles: list[str]) -> None:
    node.push(PLAIN_FILES, "plain files")
    node.run()
    newer = node.push({"templates/web/x.j2": "bonjour from {{ node.name }}\n"}, "french")

    report = node.run()

    assert (report.result, report.config_commit) == ("changed", newer)
    assert (node.root / "etc/x").read_text() == f"bonjour from {NODE}\n"
    assert len(compiles) == 2


@pytest.mark.parametrize("edit", ["content", "mode", "missing"])
def test_a_hand_edit_takes_the_full_run_which_heals_it(node: Node, edit: str) -> None:
    node.push(PLAIN_FILES, "plain files")
    node.run()
    path = node.root / "etc/app/app.conf"
    if edit == "content":
        path.write_text("workers = 64\n")
    elif edit == "mode":
        path.chmod(0o666)
    else:
        path.unlink()

    report = node.run()

    assert report.result == "changed"
    assert path.read_text() == "workers = 4\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert node.run().result == "in-sync"


def test_a_config_with_a_secret_file_always_takes_the_full_run(
    node: Node, compiles: list[str]
) -> None:
    node.push_base()
    node.run()

    assert node.run().result == "in-sync"
    assert len(compiles) == 2


def test_a_signer_removed_from_the_allowed_signers_takes_the_full_run(
    node: Node, tmp_path: Path, compiles: list[str]
) -> None:
    key = ssh_key(tmp_path, "alice")
    signers = allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": key})
    node.write_config(**{"require-signed": "head", "allowed-signers": str(signers)})
    node.push(PLAIN_FILES, "plain files, signed", ssh_signing(key))
    node.run()
    assert node.run().result == "in-sync"
    assert len(compiles) == 1
    allowed_signers(signers, {"bob@example.org": ssh_key(tmp_path, "bob")})

    report = node.run()

    assert report.result == "refused"
    assert len(compiles) == 1, "refused at verification, before compiling"
