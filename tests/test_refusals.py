"""A refusal belongs to the commit *and* the settings that judged it: a mistake in the
node's own settings is not held against a commit, fixing agent.toml retries at once,
and every refusal says how to retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_support import NODE, Node
from gitutil_repo import allowed_signers, ssh_key, ssh_signing

from reconciler.record.report import EXIT_CHANGES, EXIT_REFUSED

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def _refused(node: Node) -> object:
    """The refusal the node remembers, if any."""
    if not (node.state / "source-state.json").exists():
        return None
    return node.source_state().get("refused")


def test_a_typo_in_the_node_name_is_not_a_refused_commit(node: Node) -> None:
    node.push_base()
    node.write_config(node="web-1.shop.lab.t")

    done = node.cli("run")

    assert done.code == EXIT_REFUSED
    assert "unknown node 'web-1.shop.lab.t'" in done.out
    assert "did you mean 'web-01.shop.lab.t'?" in done.out
    assert "fix the node name (`node` in agent.toml, or --node) and run again" in done.out
    assert _refused(node) is None


def test_fixing_the_node_name_in_agent_toml_applies_at_once(node: Node) -> None:
    node.push_base()
    node.write_config(node="web-1.shop.lab.t")
    node.cli("run")
    node.write_config()

    done = node.cli("run")

    assert done.code == EXIT_CHANGES, done.out
    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"


def test_a_missing_allowed_signers_file_is_named_as_the_node_setting_it_is(
    node: Node, tmp_path: Path
) -> None:
    key = ssh_key(tmp_path, "alice")
    missing = tmp_path / "allowed_signers"
    node.write_config(**{"require-signed": "head", "allowed-signers": str(missing)})
    node.push_base(signing=ssh_signing(key))

    done = node.cli("run")

    assert done.code == EXIT_REFUSED
    assert f"allowed-signers file {missing} does not exist" in done.out
    assert "not in the allowed-signers file" not in done.out
    assert _refused(node) is None
    allowed_signers(missing, {"alice@example.org": key})
    assert node.cli("run").code == EXIT_CHANGES


def test_a_refusal_judged_by_other_settings_is_retried_when_they_change(
    node: Node, tmp_path: Path
) -> None:
    alice, bob = ssh_key(tmp_path, "alice"), ssh_key(tmp_path, "bob")
    signers = allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": alice})
    node.write_config(**{"require-signed": "head", "allowed-signers": str(signers)})
    node.push_base(signing=ssh_signing(alice))
    node.cli("run")
    bobs = node.push({"templates/web/x.j2": "from bob\n"}, "bob's change",
                     signing=ssh_signing(bob))
    refused = node.cli("run")
    assert f"tip {bobs[:12]} refused" in refused.out
    allowed_signers(signers, {"alice@example.org": alice, "bob@example.org": bob})

    done = node.cli("run")

    assert done.code == EXIT_CHANGES, done.out
    assert (node.root / "etc/x").read_text() == "from bob\n"


def test_every_refusal_says_how_to_retry(node: Node) -> None:
    node.push_base()
    node.cli("run")
    bad = node.push({"classes/web.xml": "<class name='web'><nope/></class>\n"}, "broken")

    first = node.cli("run")
    again = node.cli("run")
    status = node.cli("status")

    retry = "push a fix, or `reconciler run --retry-refused` to try it again"
    assert f"tip {bad[:12]} refused" in first.out and retry in first.out
    assert f"tip {bad} was refused" in again.out and retry in again.out
    assert f"REFUSED     {bad[:12]}" in status.out and retry in status.out
