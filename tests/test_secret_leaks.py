"""Secrets never reach a diff, a report, a log line, a backup or the history repo.

Each scenario plants a recognisable secret in a secret file (or a secret variable),
drives one path out of the node or the review, and greps what came out for it. Commands
run in-process, but for those where a command on the node prints the secret: a real
process, so that output reaching the terminal by any route would be caught.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from clirun import reconciler
from cycle_support import Node, web_class
from engine_support import (
    NODE,
    ConfigRepo,
    applied_json,
    converge_root,
    make_repo,
    state_dir,
)
from fleet_support import pushing_in_process
from gitutil_repo import git, ssh_key
from node_root import with_users
from review_support import SMALL_FLEET, FleetRepo

from reconciler.fleet.chain import Chain
from reconciler.fleet.push import queued, read_pushed

CANARY = "S3CR3T-canary"
LIVE_CANARY = "LIVE-S3CR3T-canary"
SECRET_VAR = f'<var name="token" secret="true">{CANARY}</var>'
SECRET_FILE = '<file path="/etc/app/token" template="web/token.j2" secret="true" mode="0600"/>'
TEMPLATES: dict[str, str | bytes] = {"web/token.j2": "token = {{ token }}\n"}


def secret_repo(tmp_path: Path, body: str = SECRET_FILE, *, class_policy: str = "",
                templates: dict[str, str | bytes] | None = None) -> ConfigRepo:
    """A config repo whose class declares the secret variable `token` and `body`."""
    return make_repo(tmp_path, body, templates=templates or TEMPLATES, variables=SECRET_VAR,
                     class_policy=class_policy)


def cli(*args: str | Path, cwd: Path | None = None,
        process: bool = False) -> subprocess.CompletedProcess[str]:
    return reconciler(args, env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"},
                      cwd=cwd, process=process)


def cli_run(command: str, repo: ConfigRepo, root: Path, *extra: str,
            process: bool = False) -> subprocess.CompletedProcess[str]:
    return cli(command, "--repo", repo.path, "--node", NODE, "--root", root, *extra,
               process=process)


def everything_under(path: Path) -> bytes:
    """The bytes of every regular file below `path` (to grep a whole state directory)."""
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def assert_no_secret(*outputs: str | bytes) -> None:
    for output in outputs:
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        assert CANARY not in text, text


def test_audit_and_apply_of_a_new_secret_file_show_no_content(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    outputs = [cli_run(cmd, repo, root, *fmt) for cmd in ("audit", "apply")
               for fmt in ((), ("--format", "json"))]
    assert outputs[1].returncode == 2 and "create (secret)" in outputs[1].stdout
    assert (root / "etc/app/token").read_text() == f"token = {CANARY}\n"
    assert_no_secret(*(o.stdout + o.stderr for o in outputs))


def test_a_secret_file_edited_by_hand_is_reported_without_either_content(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    (root / "etc/app/token").write_text(f"token = {LIVE_CANARY}\n")
    outputs = [cli_run("audit", repo, root), cli_run("audit", repo, root, "--format", "json"),
               cli_run("apply", repo, root, "--format", "json", "--debug", "--verbose")]
    assert "edited-by-hand" in outputs[1].stdout
    assert_no_secret(*(o.stdout + o.stderr for o in outputs))
    assert_no_secret(everything_under(state_dir(root)))


def test_a_failed_validate_that_echoes_the_secret_is_not_shown(tmp_path: Path) -> None:
    body = SECRET_FILE.replace("/>", ' validate="cat %s; false"/>')
    repo = secret_repo(tmp_path, body)
    root = with_users(tmp_path / "root")
    text = cli_run("apply", repo, root, "--debug", process=True)
    json_out = cli_run("apply", repo, root, "--format", "json", process=True)
    assert text.returncode == json_out.returncode != 0
    assert "output withheld: secret file" in json_out.stdout
    assert_no_secret(text.stdout, text.stderr, json_out.stdout, json_out.stderr)
    assert os.listdir(root / "etc/app") == []  # no temporary file left behind


def test_a_failed_validate_of_a_secret_update_leaves_no_temporary_file_or_backup(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path)
    root = with_users(tmp_path / "root")
    converge_root(repo, root)
    repo.set_class(SECRET_FILE.replace("/>", ' validate="false %s"/>'), variables=SECRET_VAR)
    repo.write("templates/web/token.j2", "token = {{ token }}-2\n")
    repo.commit()
    done = cli_run("apply", repo, root)
    assert done.returncode != 0
    assert os.listdir(root / "etc/app") == ["token"]
    assert_no_secret(done.stdout, done.stderr, everything_under(state_dir(root)))


def test_a_secret_file_is_never_visible_with_another_mode_than_declared(tmp_path: Path) -> None:
    # The check runs inside the root (its /etc is the root's): it leaves its word there.
    body = SECRET_FILE.replace("/>", ' validate="stat -c %a:%u %s > /etc/seen"/>')
    repo = secret_repo(tmp_path, body)
    root = with_users(tmp_path / "root")
    seen = root / "etc" / "seen"
    converge_root(repo, root)
    assert seen.read_text() == "600:0\n"  # the temporary file, just before the rename
    assert stat.S_IMODE((root / "etc/app/token").stat().st_mode) == 0o600


def test_a_secret_file_without_a_mode_is_written_0600(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path, SECRET_FILE.replace(' mode="0600"', ""))
    root = tmp_path / "root"
    converge_root(repo, root)
    assert stat.S_IMODE((root / "etc/app/token").stat().st_mode) == 0o600


def test_a_secret_file_whose_mode_and_owner_changed_reports_only_attributes(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path, SECRET_FILE.replace("/>", ' owner="root" group="root"/>'))
    root = tmp_path / "root"
    converge_root(repo, root)
    os.chmod(root / "etc/app/token", 0o644)
    os.chown(root / "etc/app/token", 1, 1)
    audit = cli_run("audit", repo, root, "--format", "json")
    apply = cli_run("apply", repo, root, "--debug", "--verbose")
    assert "mode 0644 → 0600" in audit.stdout
    assert_no_secret(audit.stdout, audit.stderr, apply.stdout, apply.stderr)
    assert stat.S_IMODE((root / "etc/app/token").stat().st_mode) == 0o600


def test_replacing_a_secret_file_keeps_no_backup_and_no_content_in_state(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.write("templates/web/token.j2", "token = {{ token }}-rotated\n")
    repo.commit()
    converge_root(repo, root)
    assert applied_json(root)["paths"]["/etc/app/token"]["secret"] is True  # type: ignore[index]
    assert not (state_dir(root) / "backups").exists() or \
        os.listdir(state_dir(root) / "backups") == []
    assert_no_secret(everything_under(state_dir(root)))


def test_a_pruned_orphan_secret_file_is_removed_without_a_backup(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path, class_policy='prune="true"')
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.set_class('<file path="/etc/other"><content>x\n</content></file>',
                   policy='prune="true"')
    repo.commit()
    done = cli_run("apply", repo, root, "--format", "json", "--debug")
    assert not (root / "etc/app/token").exists()
    assert "orphan-remove" in done.stdout
    assert_no_secret(done.stdout, done.stderr, everything_under(state_dir(root)))


def test_a_file_that_stops_being_secret_shows_no_diff_of_its_secret_content(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.set_class('<file path="/etc/app/token" mode="0600"><content>public\n</content></file>')
    repo.commit()
    audit = cli_run("audit", repo, root, "--format", "json")
    apply = cli_run("apply", repo, root, "--verbose")
    assert (root / "etc/app/token").read_text() == "public\n"
    assert_no_secret(audit.stdout, apply.stdout, everything_under(state_dir(root)))


def test_a_template_error_does_not_quote_a_secret_value(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path, templates={"web/token.j2": "{{ {}[token] }}\n"})
    root = tmp_path / "root"
    done = cli_run("audit", repo, root)
    json_out = cli_run("audit", repo, root, "--format", "json")
    assert done.returncode != 0 and "templates/web/token.j2" in done.stdout + done.stderr
    assert_no_secret(done.stdout, done.stderr, json_out.stdout, json_out.stderr)


def test_render_prints_a_secret_file_as_its_size_and_writes_it_0600(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path)
    repo.commit()
    out = tmp_path / "out"
    printed = cli("render", NODE, cwd=repo.path)
    written = cli("render", NODE, "--out", str(out), cwd=repo.path)
    assert printed.returncode == 0 and written.returncode == 0, printed.stderr
    assert_no_secret(printed.stdout, printed.stderr, written.stdout, written.stderr)
    assert stat.S_IMODE((out / "etc/app/token").stat().st_mode) == 0o600


def test_a_run_keeps_secrets_out_of_history_last_run_and_metrics(tmp_path: Path) -> None:
    node = Node(tmp_path)
    fleet = f"""<fleet domain="t">
  <defaults><policy max-severity="restart"/>{SECRET_VAR}</defaults>
  <nodes class="web" product="shop" cluster="lab" count="2"/>
</fleet>
"""
    files = {"fleet.xml": fleet, "classes/web.xml": web_class(f"  {SECRET_FILE}\n"),
             "templates/web/token.j2": "token = {{ token }}\n"}
    node.push(files)
    first = node.cli("run")
    (node.root / "etc/app/token").write_text(f"{LIVE_CANARY}\n")
    node.push({"templates/web/token.j2": "token = {{ token }}-rotated\n"})
    second = node.cli("run", "--format", "json")
    assert first.code == 2 and second.code == 2, first.err + second.err
    assert (node.root / "etc/app/token").read_text() == f"token = {CANARY}-rotated\n"
    history = git(node.history, "log", "-p", "--all")
    assert "secret hmac-sha256:" in history
    assert (node.state / "reconciler.prom").exists()
    assert_no_secret(first.out, first.err, second.out, second.err, history,
                     everything_under(node.state))


def test_plan_shows_no_secret_value_when_a_secret_variable_changes(tmp_path: Path) -> None:
    files = dict(SMALL_FLEET)
    files["classes/web.xml"] = files["classes/web.xml"].replace(
        '<var name="web_key">key-one-0f3a9c</var>',
        f'<var name="web_key" secret="true">{CANARY}-old</var>')
    repo = FleetRepo(tmp_path, files)
    repo.edit("classes/web.xml", f"{CANARY}-old", f"{CANARY}-new")
    repo.commit("Rotate the key")
    outputs = [repo.reconciler("plan", "--base", "HEAD~1", "--format", fmt)
               for fmt in ("text", "markdown", "json")]
    assert all(o.returncode == 2 for o in outputs), outputs[0].stderr  # 2: nodes change
    assert "secret changed" in outputs[0].stdout
    assert_no_secret(*(o.stdout + o.stderr for o in outputs))


def test_a_secret_variable_reached_through_an_include_is_refused_in_a_public_file(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path, '<file path="/etc/public" template="web/public.j2"/>',
                       templates={**TEMPLATES,
                                  "web/public.j2": "{% include 'web/token.j2' %}"})
    done = cli_run("audit", repo, tmp_path / "root")
    assert done.returncode == 1
    assert_no_secret(done.stdout, done.stderr)


def _all_objects(repo: Path) -> bytes:
    """Every object of a git repository, uncompressed (loose objects are zlib'ed)."""
    return subprocess.run(["git", "--git-dir", str(repo), "cat-file", "--batch-all-objects",
                           "--batch"], capture_output=True, check=True).stdout


def test_fleet_reports_carry_no_secret(tmp_path: Path) -> None:
    node = Node(tmp_path)
    fleet = f"""<fleet domain="t">
  <defaults><policy max-severity="restart"/>{SECRET_VAR}</defaults>
  <nodes class="web" product="shop" cluster="lab" count="2"/>
</fleet>
"""
    node.push({"fleet.xml": fleet, "classes/web.xml": web_class(f"  {SECRET_FILE}\n"),
               "templates/web/token.j2": "token = {{ token }}\n"})
    key = ssh_key(tmp_path, "node-key")
    reports = tmp_path / "reports.git"
    git(tmp_path, "init", "-q", "--bare", str(reports))
    node.write_config(**{"signing-key": str(key), "reports": f"file://{reports}"})
    with pushing_in_process():
        node.run()
        (node.root / "etc/app/token").write_text(f"{LIVE_CANARY}\n")
        node.push({"templates/web/token.j2": "token = {{ token }}-rotated\n"})
        node.run()
        node.write_config(**{"signing-key": str(key), "reports": f"file://{reports}",
                             "mode": "audit"})
        (node.root / "etc/app/token").write_text(f"{LIVE_CANARY}\n")
        assert node.run().result == "drift"
    chain = Chain(node.state / "reports" / "repo.git", "web-01.shop.lab.t", key)
    assert not queued(node.state / "reports") and chain.tip() is not None
    assert read_pushed(node.state / "reports").get("urls") == {f"file://{reports}": chain.tip()}
    done = cli("fleet", "push", "--config", node.config)
    assert done.returncode == 0, done.stderr
    published = _all_objects(reports)
    assert b"edited-by-hand" in published and b"/etc/app/token" in published
    assert_no_secret(published, _all_objects(node.state / "reports" / "repo.git"),
                     everything_under(node.state / "reports"))
    shown = cli("fleet", "show", "web-01.shop.lab.t", "--reports", reports)
    assert shown.returncode == 0 and LIVE_CANARY not in shown.stdout
    assert_no_secret(shown.stdout)


def test_a_secret_variable_of_the_wrong_type_is_refused_without_its_value(
    tmp_path: Path,
) -> None:
    wrong = (f'<var name="port" secret="true" type="int">{CANARY}</var>'
             f'<var name="keys" secret="true" type="list"><item type="bool">{CANARY}</item>'
             '</var>')
    repo = make_repo(tmp_path, SECRET_FILE, templates=TEMPLATES, variables=SECRET_VAR + wrong)
    repo.commit()
    root = tmp_path / "root"
    validate = cli("validate", cwd=repo.path)
    audit = [cli_run("audit", repo, root, "--format", fmt) for fmt in ("text", "json")]
    assert validate.returncode == 1 and "the secret value is not an integer" in validate.stdout \
        + validate.stderr
    assert all(done.returncode == 1 for done in audit)
    assert_no_secret(validate.stdout, validate.stderr, *(d.stdout + d.stderr for d in audit))


def test_run_status_check_and_history_never_quote_a_mistyped_secret(tmp_path: Path) -> None:
    node = Node(tmp_path)
    fleet = """<fleet domain="t">
  <defaults><policy max-severity="restart"/></defaults>
  <nodes class="web" product="shop" cluster="lab" count="2"/>
</fleet>
"""
    node.push({"fleet.xml": fleet, "classes/web.xml": web_class(f"  {SECRET_FILE}\n"),
               "templates/web/token.j2": "token\n"})
    first = node.cli("run")
    node.push({"fleet.xml": fleet.replace(
        "</defaults>", f'<var name="token" secret="true" type="int">{CANARY}</var></defaults>')})
    outputs = [node.cli("run"), node.cli("run", "--format", "json"), node.cli("status"),
               node.cli("check")]
    assert first.code == 2, first.err
    assert "secret value is not an integer" in outputs[0].out + outputs[0].err
    assert_no_secret(*(o.out + o.err for o in outputs), git(node.history, "log", "-p", "--all"),
                     everything_under(node.state))


def test_merge_request_plan_never_quotes_a_mistyped_secret(tmp_path: Path) -> None:
    files = dict(SMALL_FLEET)
    repo = FleetRepo(tmp_path, files)
    repo.edit("classes/web.xml", '<var name="web_key">key-one-0f3a9c</var>',
              f'<var name="web_key" secret="true" type="int">{CANARY}</var>')
    repo.commit("A secret port")
    outputs = [repo.reconciler("plan", "--base", "HEAD~1", "--format", fmt)
               for fmt in ("text", "markdown", "json")]
    assert all(o.returncode not in (0, 2) for o in outputs), outputs[0].stdout
    assert_no_secret(*(o.stdout + o.stderr for o in outputs))


def test_a_secret_file_replaced_by_a_symlink_is_not_backed_up(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.set_class('<symlink path="/etc/app/token" target="/etc/hostname"/>',
                   variables=SECRET_VAR)
    repo.commit()
    converge_root(repo, root)
    assert os.readlink(root / "etc/app/token") == "/etc/hostname"
    assert_no_secret(everything_under(state_dir(root)))


@pytest.mark.parametrize("body", [
    '<file path="/etc/public" template="web/public.j2"/>',
    '<file path="/etc/public" source="web/public.j2"/>',
    '<tree path="/etc/public" source="web/shared"/>',
])
def test_a_symlink_under_templates_cannot_publish_the_rest_of_the_repo(
    tmp_path: Path, body: str
) -> None:
    repo = secret_repo(tmp_path, body)
    (repo.path / "templates/web").mkdir(parents=True, exist_ok=True)
    os.symlink("../../classes/web.xml", repo.path / "templates/web/public.j2")
    os.symlink("../../classes", repo.path / "templates/web/shared")
    repo.commit()
    root = tmp_path / "root"
    outputs = [cli("validate", cwd=repo.path), cli_run("audit", repo, root),
               cli_run("audit", repo, root, "--rev", "HEAD"), cli("render", NODE, cwd=repo.path)]
    assert all(done.returncode == 1 for done in outputs), outputs
    assert "outside templates/" in outputs[0].stdout + outputs[0].stderr
    assert_no_secret(*(done.stdout + done.stderr for done in outputs))
    assert not (root / "etc/public").exists()


def test_a_line_edit_of_a_former_secret_file_shows_no_diff_and_keeps_no_backup(
    tmp_path: Path,
) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    repo.set_class('<line path="/etc/app/token" name="extra" line="extra = 1"/>',
                   variables=SECRET_VAR)
    repo.commit()
    audit = cli_run("audit", repo, root, "--format", "json")
    apply = cli_run("apply", repo, root, "--format", "json")
    assert apply.returncode == 2, apply.stdout + apply.stderr
    assert (root / "etc/app/token").read_text().endswith("extra = 1\n")
    assert_no_secret(audit.stdout, audit.stderr, apply.stdout, apply.stderr,
                     everything_under(state_dir(root)))
