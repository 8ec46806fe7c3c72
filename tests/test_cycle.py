"""A run from agent.toml end to end in-process: transports, last known good, signatures, rewinds,
refusals, pins and what the history records about them."""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_support import BASE_FILES, NODE, Node, web_class
from gitutil_repo import (
    allowed_signers,
    free_port,
    git,
    git_daemon,
    gpg_home,
    gpg_new_key,
    gpg_stop_agent,
    ssh_key,
    ssh_signing,
)

from reconciler.errors import UsageError
from reconciler.record.report import EXIT_CHANGES, EXIT_REFUSED
from reconciler.source.rollback import pin, release

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def closed_port_url() -> str:
    return f"git://127.0.0.1:{free_port()}/config.git"


HELLO = f"hello from {NODE}\n"


# -- transports ----------------------------------------------------------------------


def test_run_fetches_over_git_daemon(node: Node) -> None:
    commit = node.push_base()
    with git_daemon(node.origin.bare.parent) as port:
        url = f"git://127.0.0.1:{port}/config.git"
        node.write_config(remote=url)
        report = node.run()

    assert report.exit_code == EXIT_CHANGES
    assert report.config_commit == commit
    assert report.source is not None and report.source.remote == url
    assert (node.root / "etc/x").read_text() == HELLO


def test_down_primary_falls_back_to_a_working_mirror(node: Node) -> None:
    commit = node.push_base()
    node.write_config(remote=closed_port_url(), mirrors=[node.origin.url])

    report = node.run()

    assert report.exit_code == EXIT_CHANGES
    assert report.source is not None
    assert (report.source.remote, report.source.stale) == (node.origin.url, None)
    assert node.trailers()["Config-Commit"] == commit


def test_run_repairs_a_cache_with_a_missing_object(node: Node) -> None:
    node.push_base()
    node.run()
    newer = node.push({"templates/web/x.j2": "newer\n"}, "newer")
    node.run()
    cache = node.state / "source.git"
    blob = git(cache, "rev-parse", f"{newer}:templates/web/x.j2")
    (cache / "objects" / blob[:2] / blob[2:]).unlink()

    report = node.run()

    assert report.result == "in-sync"
    assert report.config_commit == newer
    assert git(cache, "fsck", "--no-progress") == ""


# -- last known good -------------------------------------------------------------------


def test_remote_down_keeps_the_last_good_commit_without_a_history_commit(node: Node) -> None:
    good = node.push_base()
    node.run()
    node.write_config(remote=closed_port_url())

    report = node.run()

    assert report.result == "in-sync"
    assert report.config_commit == good
    assert report.source is not None and report.source.stale is not None
    assert "source unavailable" in report.source.stale and "applied" in report.source.stale
    assert len(node.history_commits()) == 1


def test_first_run_with_the_remote_down_is_refused_once_in_history(node: Node) -> None:
    node.write_config(remote=closed_port_url())

    first = node.run()
    second = node.run()

    assert (first.result, first.exit_code, second.exit_code) == ("refused", EXIT_REFUSED,
                                                                 EXIT_REFUSED)
    assert first.problems and "fetch failed" in first.problems[0]
    assert len(node.history_commits()) == 1
    assert node.trailers()["Result"] == "refused"


def _break_render(node: Node) -> str:
    """A tip that changes a good file and adds a template using an undefined variable."""
    return node.push({
        "classes/web.xml": web_class(
            '  <file path="/etc/x" template="web/x.j2"/>\n'
            '  <file path="/etc/app/app.conf"><content>workers = 99\n</content></file>\n'
            '  <file path="/etc/broken" template="web/broken.j2"/>\n'),
        "templates/web/broken.j2": "{{ no_such_variable }}\n",
    }, "broken template")  # fmt: skip


def test_tip_that_fails_to_render_is_refused_whole_and_the_node_is_untouched(
    node: Node,
) -> None:
    good = node.push_base()
    node.run()
    before = node.root_files()
    bad = _break_render(node)

    report = node.run()

    assert node.root_files() == before
    assert report.config_commit == good
    assert report.source is not None and report.source.tip == bad
    assert report.source.stale is not None and "no_such_variable" in report.source.stale
    refused = node.source_state()["refused"]
    assert refused["commit"] == bad and "no_such_variable" in refused["reason"]
    assert node.source_state()["last_good"] == good


def test_tip_that_fails_to_parse_is_refused_whole(node: Node) -> None:
    good = node.push_base()
    node.run()
    before = node.root_files()
    bad = node.push({"templates/web/x.j2": "changed\n", "fleet.xml": "<fleet domain='t'>\n"},
                    "truncated fleet")

    report = node.run()

    assert node.root_files() == before
    assert report.config_commit == good
    assert node.source_state()["refused"]["commit"] == bad
    assert "fleet.xml" in node.source_state()["refused"]["reason"]


def test_refused_tip_is_recorded_once_until_a_newer_commit_arrives(node: Node) -> None:
    good = node.push_base()
    node.run()
    bad = _break_render(node)
    node.run()
    trailers = node.trailers()
    subject = git(node.history, "log", "-1", "--format=%s")
    after_refusal = node.history_commits()

    again = node.run()
    fixed = node.push({"templates/web/broken.j2": "fixed\n"}, "fix template")
    applied = node.run()

    assert (trailers["Config-Commit"], trailers["Refused-Tip"]) == (good, bad)
    assert trailers["Result"] == "in-sync"
    assert f"tip {bad[:12]} refused" in subject
    assert again.source is not None and again.source.stale is not None
    assert node.history_commits()[1:] == after_refusal
    assert applied.config_commit == fixed
    assert (node.root / "etc/broken").read_text() == "fixed\n"
    assert node.source_state()["refused"] is None


def test_retry_refused_tries_the_refused_tip_again(node: Node) -> None:
    node.push_base()
    node.run()
    _break_render(node)
    node.run()
    before = node.history_commits()

    node.run(retry_refused=True)

    assert len(node.history_commits()) == len(before) + 1


def test_refused_first_commit_leaves_the_node_empty_and_is_recorded_once(node: Node) -> None:
    bad = node.push({"fleet.xml": "<fleet>\n"}, "not even xml")

    first = node.run()
    second = node.run()

    assert (first.result, second.result) == ("refused", "refused")
    assert first.config_commit == second.config_commit == bad
    assert "fleet.xml" in first.problems[0]
    assert not any(node.root.iterdir())
    assert len(node.history_commits()) == 1


# -- history only moves forward ------------------------------------------------------


def _force_push(node: Node, onto: str) -> str:
    node.origin.reset(onto)
    sideways = node.origin.commit({"templates/web/x.j2": "sideways\n"}, "sideways", push=False)
    node.origin.push(force=True)
    return sideways


def test_force_push_is_refused_and_the_last_good_commit_kept(node: Node) -> None:
    first = node.push_base()
    node.run()
    good = node.push({"templates/web/x.j2": "second\n"}, "second")
    node.run()
    sideways = _force_push(node, first)

    report = node.run()

    assert report.config_commit == good
    assert (node.root / "etc/x").read_text() == "second\n"
    refused = node.source_state()["refused"]
    assert refused["commit"] == sideways and "force-push or rollback" in refused["reason"]
    assert node.trailers()["Refused-Tip"] == sideways


def test_allow_rewind_accepts_a_force_push(node: Node) -> None:
    first = node.push_base()
    node.run()
    node.push({"templates/web/x.j2": "second\n"}, "second")
    node.run()
    sideways = _force_push(node, first)

    report = node.run(allow_rewind=True)

    assert report.config_commit == sideways
    assert report.source is not None and report.source.stale is not None
    assert report.source.stale.startswith("allowed rewind")
    assert (node.root / "etc/x").read_text() == "sideways\n"


# -- signatures --------------------------------------------------------------------------


def _signed_node(node: Node, tmp_path: Path, policy: str) -> list[str]:
    key = ssh_key(tmp_path, "alice")
    signers = allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": key})
    node.write_config(**{"require-signed": policy, "allowed-signers": str(signers)})
    return ssh_signing(key)


def test_signed_tip_applies_and_the_history_names_the_key(node: Node, tmp_path: Path) -> None:
    signing = _signed_node(node, tmp_path, "head")
    commit = node.push_base(signing=signing)

    report = node.run()

    assert report.config_commit == commit
    signer = node.trailers()["Config-Signed-By"]
    assert signer.startswith("alice@example.org SHA256:")
    assert report.source is not None and report.source.signed_by == signer


def test_range_refuses_an_unsigned_commit_between_signed_ones(
    node: Node, tmp_path: Path
) -> None:
    signing = _signed_node(node, tmp_path, "range")
    good = node.push_base(signing=signing)
    node.run()
    unsigned = node.push({"templates/web/x.j2": "unsigned\n"}, "unsigned in the middle")
    tip = node.push({"templates/web/x.j2": "signed on top\n"}, "signed tip", signing)

    report = node.run()

    assert report.config_commit == good
    refused = node.source_state()["refused"]
    assert refused["commit"] == tip
    assert f"commit {unsigned}: not signed" in refused["reason"]
    assert (node.root / "etc/x").read_text() == HELLO


def test_head_policy_accepts_a_signed_tip_over_an_unsigned_commit(
    node: Node, tmp_path: Path
) -> None:
    signing = _signed_node(node, tmp_path, "head")
    node.push_base(signing=signing)
    node.run()
    node.push({"templates/web/x.j2": "unsigned\n"}, "unsigned in the middle")
    tip = node.push({"templates/web/x.j2": "signed on top\n"}, "signed tip", signing)

    report = node.run()

    assert report.config_commit == tip


def test_openpgp_signed_tip_applies_with_a_dedicated_keyring(
    node: Node, tmp_path: Path
) -> None:
    home = gpg_home(tmp_path / "gnupg")
    fingerprint = gpg_new_key(home, "Alice <alice@example.org>")
    node.write_config(**{"require-signed": "head", "gpg-home": str(home)})
    try:
        commit = node.origin.commit(
            BASE_FILES, "signed",
            signing=["-c", f"user.signingkey={fingerprint}"], env={"GNUPGHOME": str(home)},
        )  # fmt: skip
        report = node.run()
    finally:
        gpg_stop_agent(home)

    assert report.config_commit == commit
    assert fingerprint in node.trailers()["Config-Signed-By"]


# -- pins ------------------------------------------------------------------------------


def test_pinned_node_does_not_apply_a_newer_push_until_released(node: Node) -> None:
    older = node.push_base()
    node.run()
    node.push({"templates/web/x.j2": "newer\n"}, "newer")
    node.run()
    pin(node.agent_config(), older[:8])
    rolled_back = node.run()
    newest = node.push({"templates/web/x.j2": "newest\n"}, "newest")

    pinned = node.run()
    released = release(node.agent_config())
    followed = node.run()

    assert rolled_back.config_commit == older
    assert pinned.config_commit == older
    assert pinned.source is not None and pinned.source.pinned
    assert pinned.source.tip == newest
    assert released == older
    assert followed.config_commit == newest
    assert (node.root / "etc/x").read_text() == "newest\n"


def test_pin_works_from_the_cache_when_the_remote_is_down(node: Node) -> None:
    older = node.push_base()
    node.run()
    node.push({"templates/web/x.j2": "newer\n"}, "newer")
    node.run()
    node.write_config(remote=closed_port_url())

    sha, _ = pin(node.agent_config(), older)
    report = node.run()

    assert sha == older
    assert report.config_commit == older
    assert (node.root / "etc/x").read_text() == HELLO


def test_pin_to_an_unknown_commit_names_it_and_the_unreachable_remote(node: Node) -> None:
    node.push_base()
    node.run()
    node.write_config(remote=closed_port_url())

    with pytest.raises(UsageError) as refused:
        pin(node.agent_config(), "deadbeef")

    assert "unknown config commit 'deadbeef'; the remote is unreachable" in str(refused.value)


def test_refused_run_keeps_the_recorded_snapshot_of_the_node(node: Node) -> None:
    node.push_base()
    node.run()
    bad = _break_render(node)
    pin(node.agent_config(), bad)

    report = node.run()

    assert report.result == "refused"
    assert node.trailers()["Config-Commit"] == bad
    assert git(node.history, "show", "main:etc/x") == HELLO.strip()
    assert git(node.history, "diff", "--stat", "main~1", "main", "--", "etc") == ""


def test_a_held_change_is_recorded_once_while_it_stays_held(node: Node) -> None:
    node.write_config(**{"max-severity": "none"})
    node.push({**BASE_FILES, "classes/web.xml": web_class(
        '  <file path="/etc/x" template="web/x.j2"/>\n'
        '  <file path="/etc/held.conf" severity="reload"><content>x\n</content></file>\n')})

    first = node.run()
    second = node.run()

    assert (first.result, second.result) == ("held", "held")
    assert len(node.history_commits()) == 1
    assert node.trailers()["Held"] == "1: /etc/held.conf"
