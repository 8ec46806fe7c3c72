"""File and tree actions through the whole pipeline: content, attributes, validate, secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine_support import (
    NODE,
    applied_json,
    change,
    cli_run,
    converge_root,
    json_report,
    make_repo,
    state_dir,
)

from reconciler.record.report import EXIT_CHANGES, EXIT_FAILED, EXIT_IN_SYNC


def test_template_is_rendered_with_node_variables(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" template="web/app.conf.j2"/>',
                     templates={"web/app.conf.j2": "{{ greeting }} from {{ node.name }}\n"})
    root = tmp_path / "root"

    report = converge_root(repo, root)

    assert (root / "etc/app.conf").read_text() == f"hello from {NODE}\n"
    assert stat.S_IMODE((root / "etc/app.conf").stat().st_mode) == 0o644
    assert report.exit_code == EXIT_CHANGES
    assert change(report, "file:/etc/app.conf").status == "applied"
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_inline_content_is_written_literally(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/motd"><content>no {{ templating }} here\n'
                               '</content></file>')
    root = tmp_path / "root"

    converge_root(repo, root)

    assert (root / "etc/motd").read_text() == "no {{ templating }} here\n"


def test_source_file_is_copied_verbatim(tmp_path: Path) -> None:
    blob = b"\x00\x01binary {{ x }}\xff"
    repo = make_repo(tmp_path, '<file path="/usr/share/blob.bin" source="web/blob.bin"/>',
                     templates={"web/blob.bin": blob})
    root = tmp_path / "root"

    report = converge_root(repo, root)

    assert (root / "usr/share/blob.bin").read_bytes() == blob
    assert change(report, "file:/usr/share/blob.bin").diff == \
        f"binary content changed (0 → {len(blob)} bytes)\n"


def test_mode_owner_and_group_are_set(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" mode="0640" owner="65534" '
                               'group="65534"><content>x\n</content></file>')
    root = tmp_path / "root"

    converge_root(repo, root)

    st = (root / "etc/app.conf").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 65534, 65534)
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_only_mode_wrong_fixes_only_the_mode(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" mode="0600"><content>same\n'
                               '</content></file>')
    root = tmp_path / "root"
    live = root / "etc/app.conf"
    live.parent.mkdir(parents=True)
    live.write_text("same\n")
    live.chmod(0o644)
    before = live.stat()

    report = converge_root(repo, root)

    found = change(report, "file:/etc/app.conf")
    assert (found.op, found.summary, found.diff) == ("attrs", "mode 0644 → 0600", None)
    after = live.stat()
    assert stat.S_IMODE(after.st_mode) == 0o600
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert live.read_text() == "same\n"


def test_only_owner_wrong_fixes_only_the_owner(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" owner="65534"><content>same\n'
                               '</content></file>')
    root = tmp_path / "root"
    live = root / "etc/app.conf"
    live.parent.mkdir(parents=True)
    live.write_text("same\n")
    inode = live.stat().st_ino

    report = converge_root(repo, root)

    assert change(report, "file:/etc/app.conf").summary == "owner 0 → 65534"
    assert (live.stat().st_uid, live.stat().st_ino) == (65534, inode)


def test_ensure_absent_removes_the_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/old.conf" ensure="absent"/>')
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/old.conf").write_text("old\n")

    report = converge_root(repo, root)

    assert not (root / "etc/old.conf").exists()
    assert change(report, "file:/etc/old.conf").op == "remove"
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_validate_that_rejects_leaves_the_live_file_untouched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" validate="grep -q ^valid %s">'
                               '<content>broken\n</content></file>')
    root = tmp_path / "root"
    live = root / "etc/app.conf"
    live.parent.mkdir(parents=True)
    live.write_text("valid old\n")

    report = converge_root(repo, root)

    assert live.read_text() == "valid old\n"
    assert sorted(os.listdir(live.parent)) == ["app.conf"]
    found = change(report, "file:/etc/app.conf")
    assert found.status == "failed"
    assert "validation of /etc/app.conf failed" in (found.detail or "")
    assert report.exit_code & EXIT_FAILED


def test_validate_that_accepts_lets_the_file_in(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app.conf" validate="grep -q ^valid %s">'
                               '<content>valid new\n</content></file>')
    root = tmp_path / "root"

    report = converge_root(repo, root)

    assert (root / "etc/app.conf").read_text() == "valid new\n"
    assert report.exit_code == EXIT_CHANGES


def test_validate_runs_in_the_target_directory_for_relative_includes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/app/main.conf" validate="grep -q ok included.conf'
                               ' &amp;&amp; test -s %s"><content>include included.conf\n'
                               '</content></file>')
    root = tmp_path / "root"
    (root / "etc/app").mkdir(parents=True)
    (root / "etc/app/included.conf").write_text("ok\n")

    report = converge_root(repo, root)

    assert report.exit_code == EXIT_CHANGES
    assert (root / "etc/app/main.conf").read_text() == "include included.conf\n"


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
    root = tmp_path / "root"

    done = cli_run("apply", repo, root, "--format", "json")

    assert done.returncode & EXIT_FAILED
    assert "horse" not in done.stdout + done.stderr
    assert not (root / "etc/s.ini").exists()


def test_tree_renders_j2_copies_the_rest_and_keeps_nesting(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<tree path="/etc/site" source="web/site" mode="0640" '
                               'dir-mode="0750"/>',
                     templates={"web/site/a.conf.j2": "node={{ node.host }}\n",
                                "web/site/plain.txt": "{{ kept }}\n",
                                "web/site/sub/deeper/b.conf": "b\n"})
    root = tmp_path / "root"

    report = converge_root(repo, root)

    assert (root / "etc/site/a.conf").read_text() == "node=web-01\n"
    assert (root / "etc/site/plain.txt").read_text() == "{{ kept }}\n"
    assert (root / "etc/site/sub/deeper/b.conf").read_text() == "b\n"
    assert not (root / "etc/site/a.conf.j2").exists()
    assert stat.S_IMODE((root / "etc/site/sub/deeper/b.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/site/sub").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o755
    assert {c.path for c in report.actions[0].changes} == {
        "/etc/site/a.conf", "/etc/site/plain.txt", "/etc/site/sub/deeper/b.conf"}
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


def test_file_removed_from_a_tree_becomes_an_orphan(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<tree path="/etc/site" source="web/site"/>',
                     templates={"web/site/keep.conf": "k\n", "web/site/gone.conf": "g\n"})
    root = tmp_path / "root"
    converge_root(repo, root)
    (repo.path / "templates/web/site/gone.conf").unlink()

    report = converge_root(repo, root)

    assert [(o.path, o.status) for o in report.orphans] == [("/etc/site/gone.conf", "held")]
    assert (root / "etc/site/gone.conf").read_text() == "g\n"


def test_unknown_owner_fails_the_action_with_its_name(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<file path="/etc/a" owner="no-such-user"><content>a</content>'
                               '</file><file path="/etc/b"><content>b</content></file>')
    root = tmp_path / "root"

    report = converge_root(repo, root)

    failed = report.actions[0]
    assert (failed.id, failed.status) == ("file:/etc/a", "failed")
    assert failed.error == "unknown user 'no-such-user' (names resolve on the host running " \
                           "reconciler)"
    assert (root / "etc/b").exists() and not (root / "etc/a").exists()
