"""Secret files through the real CLI: no output, report, log line or stored byte shows them.

Everything else about files is a scenario (tests/scenarios/file-*, tree-*).
"""

from __future__ import annotations

from pathlib import Path

from engine_support import applied_json, change, cli_run, json_report, make_repo, state_dir
from node_root import with_users

from reconciler.record.report import EXIT_FAILED

SECRET_OLD = "password=old-hunter2-secret"
SECRET_NEW = "password=new-correct-horse-secret"


def test_secret_file_never_shows_its_content(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app/secret.ini" template="web/secret.j2" '
                               'secret="true" mode="0600"/>',
                     templates={"web/secret.j2": "{{ pw }}\n"},
                     variables=f'<var name="pw">{SECRET_NEW}</var>')
    root = tmp_path / "root"
    live = root / "etc/app/secret.ini"
    live.parent.mkdir(parents=True)
    live.write_text(SECRET_OLD + "\n")
    live.chmod(0o600)

    audit = cli_run("audit", repo, root)
    audit_json = cli_run("audit", repo, root, "--format", "json")
    applied = cli_run("apply", repo, root, "--format", "json", "--debug")

    for done in (audit, audit_json, applied):
        for secret in (SECRET_OLD, SECRET_NEW, "hunter2", "horse"):
            assert secret not in done.stdout + done.stderr
    assert "content changed (secret)" in audit.stdout
    found = change(json_report(applied), "file:/etc/app/secret.ini")
    assert (found.summary, found.diff, found.status) == \
        ("content changed (secret)", None, "applied")
    assert live.read_text() == SECRET_NEW + "\n"
    stored = b"".join(p.read_bytes() for p in state_dir(root).rglob("*") if p.is_file())
    assert b"hunter2" not in stored and b"horse" not in stored
    assert "sha256" in str(applied_json(root))


def test_secret_validate_failure_does_not_leak_validator_output(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/s.ini" secret="true" validate="cat %s; false">'
                               f'<content>{SECRET_NEW}\n</content></file>')
    root = with_users(tmp_path / "root")

    done = cli_run("apply", repo, root, "--format", "json")

    assert done.returncode & EXIT_FAILED
    assert "horse" not in done.stdout + done.stderr
    assert not (root / "etc/s.ini").exists()
