"""The quiet cycle: a node left as configured, with nothing upstream changed, is checked
without compiling and recorded like a full run in sync (`status`, `check`, `log` and the
metrics see it); any drift on the node or any change upstream takes a run that plans
(test_quiet_partial.py for drift alone)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from clirun import RECONCILER, quiet_process, reconciler

from reconciler import quiet
from reconciler.entry import quiet_run
from reconciler.record.report import RunReport

NODE = "bench-01.tickets.chi1.sa"
STATE = "var/lib/reconciler"
FLEET = """<fleet domain="sa">
  <defaults><var name="workers" type="int">8</var><policy max-severity="reload"/></defaults>
  <nodes class="bench" product="tickets" cluster="chi1" count="1"/>
</fleet>
"""
CLASS = """<class name="bench">
  <directory path="/etc/app" mode="0755"/>
  <file path="/etc/app/a.conf" template="bench/a.conf.j2" mode="0644"/>
  <file path="/etc/app/b.conf" template="bench/b.conf.j2" mode="0640"/>
  <symlink path="/etc/app/current" target="/etc/app/a.conf"/>
%s</class>
"""


def make_repo(path: Path, extra: str = "", template: str = "workers = {{ workers }}\n") -> Path:
    (path / "classes").mkdir(parents=True)
    (path / "templates" / "bench").mkdir(parents=True)
    (path / "fleet.xml").write_text(FLEET)
    (path / "classes" / "bench.xml").write_text(CLASS % extra)
    (path / "templates" / "bench" / "a.conf.j2").write_text(template)
    (path / "templates" / "bench" / "b.conf.j2").write_text("b {{ node.name }}\n")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "node"
    path.mkdir()
    return path


def args(repo: Path, root: Path, command: str = "apply") -> list[str]:
    return [command, "--repo", str(repo), "--node", NODE, "--root", str(root)]


def full(repo: Path, root: Path, command: str = "apply") -> int:
    return reconciler(args(repo, root, command)).returncode


def state_files(root: Path) -> dict[str, int]:
    state = root / "var/lib/reconciler"
    return {path.name: path.stat().st_mtime_ns for path in state.iterdir() if path.is_file()}


@pytest.fixture
def settled(repo: Path, root: Path) -> Path:
    """The node after a full apply: as configured, its quiet record written."""
    assert full(repo, root) == 2
    assert quiet_run(args(repo, root)) == 0
    return root


def test_a_quiet_apply_answers_in_sync_and_rewrites_only_the_run_records(
    repo: Path, settled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state_files(settled)
    assert quiet_run(args(repo, settled)) == 0
    assert quiet_run(args(repo, settled, "audit")) == 0
    after = state_files(settled)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"last-run.json", "last-success.json", "reconciler.prom"}
    assert "in-sync (exit 0): 4 in sync" in capsys.readouterr().out


def test_a_full_no_op_apply_does_not_rewrite_the_last_applied_record(
    repo: Path, settled: Path
) -> None:
    applied = settled / "var/lib/reconciler/applied.json"
    written = applied.stat().st_mtime_ns
    assert full(repo, settled) == 0
    assert applied.stat().st_mtime_ns == written


def test_edited_content_takes_the_full_run_which_finds_the_drift(
    repo: Path, settled: Path
) -> None:
    with open(settled / "etc/app/a.conf", "a") as handle:
        handle.write("# hand edit\n")
    assert quiet_run(args(repo, settled, "audit")) is None
    assert full(repo, settled, "audit") == 2


def test_a_changed_mode_takes_the_full_run(repo: Path, settled: Path) -> None:
    os.chmod(settled / "etc/app/b.conf", 0o644)
    assert quiet_run(args(repo, settled)) is None
    assert full(repo, settled) == 2
    assert (settled / "etc/app/b.conf").stat().st_mode & 0o777 == 0o640


def test_a_changed_owner_takes_the_full_run(repo: Path, settled: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(settled / "etc/app/a.conf", 1234, 1234)
    assert quiet_run(args(repo, settled)) is None


def test_a_missing_file_takes_the_full_run_which_restores_it(
    repo: Path, settled: Path
) -> None:
    (settled / "etc/app/a.conf").unlink()
    assert quiet_run(args(repo, settled)) is None
    assert full(repo, settled) == 2
    assert quiet_run(args(repo, settled)) == 0


@pytest.mark.parametrize("replace", ["directory", "symlink"])
def test_a_file_of_another_type_takes_the_full_run(
    repo: Path, settled: Path, replace: str
) -> None:
    path = settled / "etc/app/a.conf"
    content = path.read_bytes()
    path.unlink()
    if replace == "directory":
        path.mkdir()
    else:
        (settled / "elsewhere").write_bytes(content)
        path.symlink_to(settled / "elsewhere")
    assert quiet_run(args(repo, settled)) is None


def test_a_config_edit_takes_the_full_run(repo: Path, settled: Path) -> None:
    (repo / "templates" / "bench" / "a.conf.j2").write_text("workers = {{ workers * 2 }}\n")
    assert quiet_run(args(repo, settled)) is None
    assert full(repo, settled) == 2
    assert (settled / "etc/app/a.conf").read_text() == "workers = 16\n"
    assert quiet_run(args(repo, settled)) == 0


def test_another_node_or_root_or_reconciler_version_takes_the_full_run(
    repo: Path, settled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = args(repo, settled)
    other[other.index("--node") + 1] = "bench-02.tickets.chi1.sa"
    assert quiet_run(other) is None
    shutil.copytree(settled, tmp_path / "copy", symlinks=True)
    assert quiet_run(args(repo, tmp_path / "copy")) is None
    monkeypatch.setattr(quiet, "__version__", "99.0")
    assert quiet_run(args(repo, settled)) is None


def test_options_the_quiet_cycle_does_not_know_take_the_full_run(
    repo: Path, settled: Path
) -> None:
    for extra in (["--format", "json"], ["--verbose"], ["--rev", "HEAD"], ["--debug"]):
        assert quiet_run([*args(repo, settled), *extra]) is None


def test_templates_that_read_facts_key_the_record_on_them(tmp_path: Path, root: Path) -> None:
    repo = make_repo(tmp_path / "facts", template="arch = {{ facts.architecture }}\n")
    assert full(repo, root) == 2
    record = root / "var/lib/reconciler" / quiet.QUIET_FILE
    key = json.loads(record.read_text())["key"]
    assert key["facts"] is not None
    assert quiet_run(args(repo, root)) == 0
    changed = json.loads(record.read_text())
    changed["key"]["facts"] = "0" * 64
    record.write_text(json.dumps(changed))
    assert quiet_run(args(repo, root)) is None


def test_a_node_with_other_kinds_of_action_keeps_no_record(tmp_path: Path, root: Path) -> None:
    repo = make_repo(tmp_path / "purge",
                     extra='  <directory path="/etc/purged" mode="0755" purge="true"/>\n')
    assert full(repo, root) == 2
    assert not (root / "var/lib/reconciler" / quiet.QUIET_FILE).exists()
    assert quiet_run(args(repo, root)) is None


def test_the_quiet_process_loads_no_engine_library(repo: Path, settled: Path) -> None:
    assert quiet_process(args(repo, settled))[1] == "0 []"
    process = subprocess.run([RECONCILER, *args(repo, settled)], capture_output=True,
                             text=True, check=False)
    assert process.returncode == 0
    assert "in-sync (exit 0): 4 in sync" in process.stdout


def test_a_changed_account_database_takes_the_full_run(repo: Path, settled: Path) -> None:
    (settled / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    assert quiet_run(args(repo, settled)) is None


def test_a_command_line_the_full_interface_refuses_is_left_to_it(
    repo: Path, settled: Path
) -> None:
    assert quiet_run([*args(repo, settled, "audit"), "--max-severity", "reboot"]) is None
    assert quiet_run([*args(repo, settled), "--no-such-option"]) is None
    assert quiet_run([*args(repo, settled), "--node"]) is None


def last_run(root: Path) -> RunReport:
    return RunReport.model_validate_json((root / STATE / "last-run.json").read_bytes())


def test_a_quiet_audit_is_the_last_run_status_shows(repo: Path, settled: Path) -> None:
    before = last_run(settled)
    assert quiet_run(args(repo, settled, "audit")) == 0

    after = last_run(settled)
    done = reconciler(["status", "--root", settled])

    assert after.started > before.started
    assert (after.mode, after.result, after.exit_code) == ("audit", "in-sync", 0)
    assert after.counts == before.counts
    assert after.config_commit == before.config_commit
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"node        {NODE} (audit mode, by reconciler audit)"
    assert "→ in-sync (exit 0)" in done.stdout
    assert "counts      4 in sync, 0 applied" in done.stdout


def test_a_quiet_apply_reads_as_a_full_one_in_sync(repo: Path, settled: Path) -> None:
    assert full(repo, settled) == 0
    full_run = last_run(settled).model_dump(mode="json")
    assert quiet_run(args(repo, settled)) == 0

    quiet = last_run(settled).model_dump(mode="json")

    assert quiet["started"] > full_run["started"]
    different = {name for name in full_run if quiet[name] != full_run[name]}
    # The quiet run lists no action one by one, and gathered no facts.
    assert different <= {"started", "duration_s", "actions", "facts"}
    assert (quiet["mode"], quiet["result"]) == ("change", "in-sync")


def test_check_and_the_metrics_judge_the_quiet_run(repo: Path, settled: Path) -> None:
    with open(settled / "etc/app/a.conf", "a") as handle:
        handle.write("# hand edit\n")
    assert full(repo, settled, "audit") == 2
    assert reconciler(["check", "--root", settled]).returncode == 1
    assert full(repo, settled) == 2

    assert quiet_run(args(repo, settled, "audit")) == 0

    done = reconciler(["check", "--root", settled])
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("RECONCILER OK")
    metrics = (settled / STATE / "reconciler.prom").read_text()
    assert 'reconciler_last_run_result{result="in-sync"} 1' in metrics
    assert 'reconciler_last_run_count{state="in_sync"} 4' in metrics
    assert 'mode="audit"' in metrics
    success = json.loads((settled / STATE / "last-success.json").read_text())
    assert success["time"] == last_run(settled).started.isoformat()


def test_log_after_a_quiet_run_lists_the_runs_a_full_one_would(repo: Path, settled: Path) -> None:
    logged = reconciler(["log", "--root", settled]).stdout

    assert quiet_run(args(repo, settled)) == 0

    done = reconciler(["log", "--root", settled])
    assert done.returncode == 0, done.stderr
    assert done.stdout == logged
    assert [line.split()[5] for line in done.stdout.splitlines()] == ["changed"]


def test_a_file_edited_between_its_write_and_the_record_is_found_drifted(root: Path) -> None:
    (root / "conf").write_bytes(b"edited\n")
    # The record of a file the run just wrote hashes what it wrote, not what is there now...
    entry = quiet.live_entry(str(root), "/conf", b"wrote!\n")
    assert entry[5] == hashlib.sha256(b"wrote!\n").hexdigest()
    # ...so the next cycle, which reads the file, finds it differs and plans it.
    assert quiet.live_entry(str(root), "/conf") != entry
    assert quiet.live_entry(str(root), "/conf", b"longer than that\n")[5] == \
        hashlib.sha256(b"edited\n").hexdigest(), "another size: read"
