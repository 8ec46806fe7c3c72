"""`reconciler audit` and `reconciler apply` as a person and a machine see them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from engine_support import (
    NODE,
    RECONCILER,
    ConfigRepo,
    action,
    cli,
    cli_run,
    converge_root,
    json_report,
    make_repo,
    state_dir,
    tree_state,
)

from reconciler.record.report import (
    EXIT_CHANGES,
    EXIT_FAILED,
    EXIT_HELD,
    EXIT_REFUSED,
    RunReport,
)

DEMO = """
<package name="nginx"/>
<directory path="/etc/web"/>
<file path="/etc/web/web.conf" template="web/web.conf.j2" notify="service:web:reload"
      requires="package:nginx"/>
<file path="/etc/web/secret.ini" secret="true" mode="0600"><content>pw=abc
</content></file>
<symlink path="/etc/web/current" target="/etc/web/web.conf"/>
<service name="web" backend="command"><status>true</status><start>true</start><stop>true</stop>
</service>
"""
TEMPLATES: dict[str, str | bytes] = {"web/web.conf.j2": "greeting = {{ greeting }}\n"
                                                        "node = {{ node.name }}\n"}


def _demo(tmp_path: Path) -> ConfigRepo:
    return make_repo(tmp_path, DEMO, templates=TEMPLATES, defaults='max-severity="reload"')


def test_readme_demo_builds_reports_a_hand_edit_heals_and_settles(tmp_path: Path) -> None:
    repo = _demo(tmp_path)
    root = tmp_path / "node"

    # The installed console script builds the node, as a reader of the README runs it;
    # the steps after it are the same commands in this process (each process is an
    # interpreter start and the imports, which the first one has proven).
    built = cli_run("apply", repo, root, process=True)
    (root / "etc/web/web.conf").write_text("greeting = hand edited\n")
    audit = cli_run("audit", repo, root)
    healed = cli_run("apply", repo, root)
    settled = cli_run("apply", repo, root, "--format", "json")

    assert built.returncode == EXIT_CHANGES | EXIT_HELD, built.stdout + built.stderr
    assert (root / "etc/web/web.conf").read_text() == f"greeting = hello\nnode = {NODE}\n"
    assert audit.returncode == EXIT_CHANGES | EXIT_HELD
    assert "content changed [edited by hand since reconciler wrote it]" in audit.stdout
    assert "-greeting = hand edited\n+greeting = hello\n+node = web-01.shop.lab.t\n" in \
        audit.stdout
    assert healed.returncode == EXIT_CHANGES | EXIT_HELD
    assert (root / "etc/web/web.conf").read_text() == f"greeting = hello\nnode = {NODE}\n"
    report = json_report(settled)
    assert report.exit_code == EXIT_HELD
    held = {(a.id, c.summary) for a in report.actions for c in a.changes}
    assert held == {("package:nginx", "install nginx"),
                    ("service:web", "start web (state unknown)")}
    assert all(c.status == "held" and c.detail for a in report.actions for c in a.changes)


def test_text_report_reads_one_change_a_line_with_diffs_and_a_summary(tmp_path: Path) -> None:
    repo = _demo(tmp_path)
    root = tmp_path / "node"

    done = cli_run("apply", repo, root)

    lines = done.stdout.splitlines()
    assert lines[0] == f"{NODE} — apply at working tree, ceiling reload, root {root}"
    held = next(line for line in lines if " package:nginx " in line)
    assert held.startswith("held restart package:nginx install nginx; held: apt-get installs "
                           "only on the running system")
    assert "create (secret)" in done.stdout and "pw=abc" not in done.stdout
    assert "+++ desired:/etc/web/web.conf" in done.stdout
    assert lines[-1].startswith("held (exit 10): 0 in sync, 4 applied, "
                                "3 held because --root is not / in ")


def test_json_output_validates_against_the_run_report_schema(tmp_path: Path) -> None:
    repo = _demo(tmp_path)
    root = tmp_path / "node"

    for command in ("audit", "apply", "audit"):
        done = cli_run(command, repo, root, "--format", "json")
        report = json_report(done)
        assert RunReport.model_validate_json(report.model_dump_json()) == report
        assert report.node == NODE and report.root == str(root)


def test_unknown_node_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    repo = _demo(tmp_path)

    text = cli_run("apply", repo, tmp_path / "node", node="web-99.shop.lab.t")
    machine = cli_run("apply", repo, tmp_path / "node", "--format", "json",
                      node="web-99.shop.lab.t")

    assert text.returncode == EXIT_REFUSED
    assert "unknown node 'web-99.shop.lab.t': not in fleet.xml" in text.stdout
    assert "Traceback" not in text.stdout + text.stderr
    report = json_report(machine)
    assert (report.result, report.problems[0].startswith("unknown node")) == ("refused", True)


def test_bad_config_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" template="web/missing.j2"/>')
    root = tmp_path / "node"

    done = cli_run("apply", repo, root)

    assert done.returncode == EXIT_REFUSED
    assert "templates/web/missing.j2 not found" in done.stdout
    assert not (root / "etc").exists()


def test_help_documents_the_exit_codes() -> None:
    done = cli("apply", "--help")

    assert "8  changes held above the severity ceiling" in done.stdout
    assert "--max-severity" in done.stdout


def test_max_severity_flag_raises_the_ceiling_for_one_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" severity="restart"><content>a</content>'
                               "</file>", defaults='max-severity="none"')
    root = tmp_path / "node"

    held = cli_run("apply", repo, root)
    raised = cli_run("apply", repo, root, "--max-severity", "restart")

    assert (held.returncode, raised.returncode) == (EXIT_HELD, EXIT_CHANGES)
    assert (root / "etc/a").read_text() == "a"


DRIFTED = """
<directory path="/srv/data" mode="0750"/>
<file path="/etc/a.conf" mode="0640"><content>a\n</content></file>
<file path="/etc/b.conf"><content>b\n</content></file>
<file path="/etc/gone.conf"><content>gone\n</content></file>
<symlink path="/etc/link" target="/etc/a.conf"/>
<tree path="/etc/site" source="web/site"/>
<file path="/etc/dropped.conf"><content>dropped\n</content></file>
"""


def _drifted_root(tmp_path: Path) -> tuple[ConfigRepo, Path]:
    """A root applied once, then edited by hand and left behind by a config change."""
    repo = make_repo(tmp_path, DRIFTED, templates={"web/site/x.conf.j2": "x={{ greeting }}\n"},
                     node_policy='prune="true"')
    root = tmp_path / "node"
    converge_root(repo, root)
    (root / "etc/a.conf").chmod(0o666)
    (root / "etc/b.conf").write_text("edited\n")
    (root / "etc/gone.conf").unlink()
    (root / "etc/link").unlink()
    (root / "etc/link").symlink_to("/elsewhere")
    (root / "srv/data").chmod(0o777)
    (root / "etc/site/x.conf").write_text("x=edited\n")
    repo.set_class(DRIFTED.replace('<file path="/etc/dropped.conf"><content>dropped\n</content>'
                                   "</file>", '<file path="/etc/new.conf"><content>new\n'
                                              "</content></file>"))
    return repo, root


def test_audit_through_the_cli_never_writes_the_root_or_the_record(tmp_path: Path) -> None:
    repo, root = _drifted_root(tmp_path)
    before = tree_state(root)
    record = state_dir(root) / "applied.json"
    record_before = (record.read_bytes(), record.stat().st_mtime_ns)

    text = cli_run("audit", repo, root)
    machine = cli_run("audit", repo, root, "--format", "json", "--debug")

    assert (text.returncode, machine.returncode) == (EXIT_CHANGES, EXIT_CHANGES)
    assert "refused, the system is read-only" not in machine.stderr
    # The state directory is reconciler's own (run lock, template cache); the node is not.
    own = "/" + os.path.relpath(state_dir(root), root)
    assert {k: v for k, v in tree_state(root).items() if not k.startswith(own)} == \
        {k: v for k, v in before.items() if not k.startswith(own)}
    assert (record.read_bytes(), record.stat().st_mtime_ns) == record_before
    assert not (state_dir(root) / "backups").exists()


def test_text_report_says_why_a_dependent_was_skipped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<command name="fail" run="exit 3"/>'
                               '<file path="/etc/a" requires="command:fail"><content>a</content>'
                               '</file>')

    done = cli_run("apply", repo, tmp_path / "node", "--host-commands")

    assert done.returncode == EXIT_FAILED
    assert "failed: exited 3" in done.stdout
    assert "skipped: requires command:fail which failed" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("failed (exit 4): 0 in sync, 1 failed, "
                                                   "1 skipped in ")


def test_sigterm_during_apply_finishes_the_step_and_reports_an_interrupted_run(
    tmp_path: Path,
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    repo = make_repo(tmp_path, f"""
<command name="slow" run="touch {started}; i=0; while [ ! -e {release} ] &amp;&amp; [ $i -lt 600 ];
  do sleep 0.1; i=$((i+1)); done"/>
<file path="/etc/after" requires="command:slow"><content>x
</content></file>
""")
    root = tmp_path / "root"
    process = subprocess.Popen(
        [RECONCILER, "apply", "--repo", str(repo.path), "--node", NODE, "--root", str(root),
         "--host-commands", "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60  # bounded wait for the command to be running
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    release.touch()  # the step in progress finishes only once the signal was sent
    out, err = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGTERM, err
    report = RunReport.model_validate_json(out)
    assert report.result == "interrupted"
    assert action(report, "command:slow").status == "applied"
    assert not (root / "etc/after").exists()
