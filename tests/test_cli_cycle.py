"""`reconciler run/status/log/rollback` against a real bare origin: in-process, and as a
real process where a test is about the process (the console script). A run waiting for
the lock, stopped by a signal or killed is in test_cli_cycle_signals.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pytest
from cycle_support import NODE, SECRET, Node
from gitutil_repo import allowed_signers, free_port, git, ssh_key, ssh_signing

from reconciler.record.report import EXIT_CHANGES, EXIT_REFUSED
from reconciler.source.rollback import pin

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_first_run_builds_the_node_and_records_one_history_commit(node: Node) -> None:
    config_commit = node.push_base()

    done = node.cli("run", process=True)

    assert done.code == EXIT_CHANGES, done.err
    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"
    assert len(node.history_commits()) == 1
    assert node.trailers() == {
        "Config-Commit": config_commit,
        "Config-Signed-By": "unsigned",
        "Node": NODE,
        "Mode": "change",
        "Result": "changed",
        "Changed": "3: /etc/app/app.conf /etc/app/secret.ini /etc/x",
        "Held": "0",
        "Failed": "0",
        "States": "drift=0 pending=0 held=0 failed=0",
    }
    assert f"+hello from {NODE}" in git(node.history, "log", "-p", "--", "etc/x")
    tree = git(node.history, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert tree == ["etc/app/app.conf", "etc/app/secret.ini", "etc/x", "run.json"]
    assert json.loads(git(node.history, "show", "main:run.json"))["result"] == "changed"


def test_run_writes_the_prometheus_textfile(node: Node) -> None:
    config_commit = node.push_base()

    node.cli("run")

    metrics = (node.state / "reconciler.prom").read_text()
    assert 'reconciler_last_run_result{result="changed"} 1' in metrics
    assert f'commit="{config_commit}"' in metrics


def test_secret_reaches_the_history_only_as_a_hash_keyed_by_the_node(node: Node) -> None:
    node.push_base()

    node.run()

    key = (node.state / "secret-digest.key").read_bytes()
    keyed = hmac.new(key, f"{SECRET}\n".encode(), hashlib.sha256).hexdigest()
    assert git(node.history, "show", "main:etc/app/secret.ini") == f"secret hmac-sha256:{keyed}"
    plain = hashlib.sha256(f"{SECRET}\n".encode()).hexdigest()
    assert plain not in git(node.history, "log", "-p", "--all")
    assert plain not in (node.state / "applied.json").read_text()
    assert SECRET not in git(node.history, "log", "-p", "--all")
    assert SECRET not in git(node.history, "show", "main:run.json")
    assert SECRET not in (node.state / "last-run.json").read_text()


def test_second_run_with_nothing_new_updates_only_last_run(node: Node) -> None:
    node.push_base()
    node.run()
    first = node.last_run()["started"]

    done = node.cli("run")

    assert done.code == 0, done.err
    assert len(node.history_commits()) == 1
    assert node.last_run()["started"] != first
    assert node.last_run()["result"] == "in-sync"


def test_pushed_commit_is_applied_and_named_in_a_new_history_commit(node: Node) -> None:
    node.push_base()
    node.run()
    newer = node.push({"templates/web/x.j2": "bonjour from {{ node.name }}\n"}, "french x")

    done = node.cli("run")

    assert done.code == EXIT_CHANGES, done.err
    assert (node.root / "etc/x").read_text() == f"bonjour from {NODE}\n"
    assert len(node.history_commits()) == 2
    assert node.trailers()["Config-Commit"] == newer
    assert node.trailers()["Changed"] == "1: /etc/x"
    assert git(node.history, "log", "-1", "--format=%s") == f"changed at {newer[:12]}: french x " \
        "(1 applied)"


def test_log_shows_each_run_on_one_line_with_commit_result_and_paths(node: Node) -> None:
    base = node.push_base()
    node.run()
    newer = node.push({"templates/web/x.j2": "bonjour\n"}, "french x")
    node.run()

    done = node.cli("log")

    lines = done.out.splitlines()
    assert done.code == 0, done.err
    assert len(lines) == 2
    assert f"config {newer[:12]} changed" in lines[0] and lines[0].endswith("/etc/x")
    assert f"config {base[:12]} changed" in lines[1]
    assert "/etc/app/app.conf, /etc/app/secret.ini, /etc/x" in lines[1]


def test_log_path_shows_only_runs_that_touched_that_path(node: Node) -> None:
    base = node.push_base()
    node.run()
    node.push({"templates/web/x.j2": "bonjour\n"}, "french x")
    node.run()

    done = node.cli("log", "--path", "/etc/app/app.conf")

    assert done.code == 0, done.err
    assert len(done.out.splitlines()) == 1
    assert f"config {base[:12]}" in done.out


def test_log_of_a_fresh_node_says_nothing_was_recorded(node: Node) -> None:
    done = node.cli("log")

    assert (done.code, done.out.strip()) == (0, "no runs recorded yet")


def test_first_run_with_the_remote_down_is_refused_and_status_says_why(node: Node) -> None:
    node.write_config(remote=f"git://127.0.0.1:{free_port()}/config.git")

    done = node.cli("run")
    status = node.cli("status")

    assert done.code == EXIT_REFUSED
    assert not node.root.exists() or not any(node.root.iterdir())
    assert "fetch failed" in done.out + done.err
    assert "config      none applied yet" in status.out
    assert "refused (exit 1)" in status.out
    assert "why         " in status.out and "fetch failed" in status.out
    assert "127.0.0.1" in status.out


def test_remote_down_keeps_enforcing_last_good_and_status_says_stale(node: Node) -> None:
    good = node.push_base()
    node.run()
    (node.root / "etc/x").write_text("edited by hand\n")
    node.write_config(remote=f"file://{node.tmp}/nowhere.git")

    done = node.cli("run")
    status = node.cli("status")

    assert done.code == EXIT_CHANGES, done.err
    assert "stale: source unavailable" in done.out
    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"
    stale = node.last_run()["source"]["stale"]
    assert stale.startswith("source unavailable") and good[:12] in stale
    assert f"config      {good[:12]} base config" in status.out
    assert "STALE       source unavailable" in status.out


def test_unsigned_commit_under_require_signed_head_leaves_the_node_on_the_last_good(
    node: Node, tmp_path: Path
) -> None:
    key = ssh_key(tmp_path, "alice")
    signers = allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": key})
    node.write_config(**{"require-signed": "head", "allowed-signers": str(signers)})
    good = node.push_base(signing=ssh_signing(key))
    first = node.cli("run")
    bad = node.push({"templates/web/x.j2": "unsigned\n"}, "sneaky")

    done = node.cli("run")
    status = node.cli("status")

    assert first.code == EXIT_CHANGES, first.err
    assert node.trailers("main~1")["Config-Signed-By"].startswith("alice@example.org SHA256:")
    assert done.code == EXIT_REFUSED, done.err  # in sync on the last good, but it refused
    assert f"source refused: tip {bad} refused" in done.out
    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"
    assert f"config      {good[:12]}" in status.out
    assert f"REFUSED     {bad[:12]}" in status.out and "not signed" in status.out
    newest = node.cli("log").out.splitlines()[0]
    assert f"config {good[:12]} in-sync     (tip {bad[:12]} refused)" in newest


def test_rollback_applies_an_older_commit_and_pins_it(node: Node) -> None:
    older = node.push_base()
    node.run()
    node.push({"templates/web/x.j2": "newer\n"}, "newer x")
    node.run()

    done = node.cli("rollback", "--to", older[:10])
    status = node.cli("status")

    assert done.code == EXIT_CHANGES, done.err
    assert (node.root / "etc/x").read_text() == f"hello from {NODE}\n"
    assert node.trailers()["Config-Commit"] == older
    assert f"PINNED      to {older[:12]}" in status.out


def test_rollback_release_follows_the_branch_again(node: Node) -> None:
    older = node.push_base()
    node.run()
    newest = node.push({"templates/web/x.j2": "newest\n"}, "newest x")
    pin(node.agent_config(), older)

    done = node.cli("rollback", "--release")

    assert done.code == EXIT_CHANGES, done.err
    assert done.out.startswith(f"released the pin on {older[:12]}: following main again, "
                               "from this run on\n")
    assert (node.root / "etc/x").read_text() == "newest\n"
    assert node.trailers()["Config-Commit"] == newest


def test_rollback_to_an_unknown_commit_is_a_clear_error(node: Node) -> None:
    node.push_base()
    node.run()

    done = node.cli("rollback", "--to", "deadbeef")

    assert done.code == EXIT_REFUSED
    assert "unknown config commit 'deadbeef'" in done.err
    assert "Traceback" not in done.err


def test_unknown_key_in_agent_toml_names_file_line_and_key(node: Node) -> None:
    node.config.write_text(node.config.read_text() + "colour = \"blue\"\n")
    line = len(node.config.read_text().splitlines())

    done = node.cli("run")

    assert done.code == EXIT_REFUSED
    assert done.err.strip() == f"{node.config}:{line}: colour: unknown key"
    assert not node.state.exists()


def test_bad_value_in_agent_toml_names_file_line_and_key(node: Node) -> None:
    node.config.write_text(node.config.read_text() + 'mode = "sometimes"\n')
    line = len(node.config.read_text().splitlines())

    done = node.cli("status")

    assert done.code == EXIT_REFUSED
    assert done.err.startswith(f"{node.config}:{line}: mode: ")
    assert "Traceback" not in done.err


def test_node_flag_wins_over_agent_toml(node: Node) -> None:
    node.push_base()

    done = node.cli("run", "--node", "web-02.shop.lab.t")

    assert done.code == EXIT_CHANGES, done.err
    assert (node.root / "etc/x").read_text() == "hello from web-02.shop.lab.t\n"
    assert node.trailers()["Node"] == "web-02.shop.lab.t"


def test_mode_flag_audits_without_writing(node: Node) -> None:
    node.push_base()

    done = node.cli("run", "--mode", "audit")

    assert done.code == EXIT_CHANGES, done.err
    assert not (node.root / "etc/x").exists()
    assert node.trailers()["Mode"] == "audit"
    assert node.trailers()["Result"] == "pending"


def test_state_dir_root_and_branch_flags_win_over_agent_toml(node: Node) -> None:
    node.push_base()
    git(node.origin.work, "checkout", "--quiet", "-b", "staging")
    staged = node.origin.commit({"templates/web/x.j2": "staging\n"}, "on staging", push=False)
    git(node.origin.work, "push", "--quiet", "origin", "staging")
    other_root, other_state = node.tmp / "other-root", node.tmp / "other-state"

    done = node.cli("run", "--branch", "staging", "--root", other_root,
                    "--state-dir", other_state)

    assert done.code == EXIT_CHANGES, done.err
    assert (other_root / "etc/x").read_text() == "staging\n"
    assert not node.state.exists() and not node.root.exists()
    last = json.loads((other_state / "last-run.json").read_bytes())
    assert last["config_commit"] == staged


def test_bad_flag_value_is_a_clear_error(node: Node) -> None:
    done = node.cli("run", "--node", "not a node name")

    assert done.code == EXIT_REFUSED
    assert done.err.startswith("error: --node: ")
    assert "Traceback" not in done.err


def test_status_of_a_fresh_node_says_it_has_no_state(node: Node) -> None:
    done = node.cli("status")

    assert done.code == 3
    assert f"node        {NODE} (mode set by the fleet's policy)" in done.out
    assert f"last run    never (no state under {node.state})" in done.out


def test_status_after_runs_shows_commit_tip_times_and_counts(node: Node) -> None:
    base = node.push_base()
    node.run()
    (node.root / "etc/app/app.conf").write_text("workers = 99\n")
    node.write_config(mode="audit")

    node.run()
    done = node.cli("status")
    info = json.loads(node.cli("status", "--format", "json").out)

    assert done.code == 0, done.err
    assert f"config      {base[:12]} base config" in done.out
    assert f"tip seen    {base[:12]}" in done.out
    assert re.search(r"^last run    \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\) → drift "
                     r"\(exit 2\)$", done.out, re.M)
    assert re.search(r"^last ok     \d{4}-.* UTC \(\d+s ago\)$", done.out, re.M)
    assert re.search(r"^good since  \d{4}-.* UTC \(\d+s ago\)$", done.out, re.M)
    assert "counts      2 in sync, 0 applied, 0 failed, 1 drift, 0 pending, 0 held, 0 orphans" \
        in done.out
    assert "STALE" not in done.out and "PINNED" not in done.out and "REFUSED" not in done.out
    assert info["last_good"] == base
    assert info["last_run"]["counts"]["edited_by_hand"] == 1


def test_every_agent_toml_key_has_a_flag(node: Node) -> None:
    from reconciler.agent.settings import AgentConfig

    done = node.cli("run", "--help")

    keys = {(field.alias or name) for name, field in AgentConfig.model_fields.items()}
    singular = {"mirrors": "--mirror", "signers": "--signer"}
    flags = {singular.get(key, f"--{key.replace('_', '-')}") for key in keys}
    assert {flag for flag in flags if flag not in done.out} == set()


def test_flags_alone_make_an_agent_config_and_a_bad_one_names_the_flag(tmp_path: Path) -> None:
    from reconciler.agent.settings import DEFAULT_PATH
    from reconciler.cli.common import load_config
    from reconciler.errors import UsageError

    if os.path.exists(DEFAULT_PATH):
        pytest.skip(f"{DEFAULT_PATH} exists on this host")
    good = load_config(None, remote="file:///srv/config.git", node=NODE, mirrors=())

    with pytest.raises(UsageError) as bad:
        load_config(None, remote="ext::sh -c touch% /tmp/pwned")

    assert (good.remote, good.node, good.branch) == ("file:///srv/config.git", NODE, "main")
    assert [p.message for p in bad.value.problems] == [
        "--remote: transport helper URLs are not allowed: 'ext::sh -c touch% /tmp/pwned'"]


def test_a_root_that_is_a_file_is_a_clear_error(node: Node) -> None:
    node.push_base()
    node.root.write_text("not a directory\n")

    done = node.cli("run")

    assert done.code == EXIT_REFUSED
    assert done.err.strip() == f"{node.root}: cannot use it as the root directory: File exists"
