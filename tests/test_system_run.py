"""LocalSystem.run and lock_holder against real processes: output, exit codes, environment,
timeouts that end the whole process group, and who holds a lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fleet_support import wait_until
from pkg_debs import lock_held

from reconciler.system.interface import UnsafePath
from reconciler.system.local import LocalSystem
from reconciler.system.process import OUTPUT_LIMIT
from reconciler.system.wrappers import ReadOnlySystem


def gone(pid: int) -> bool:
    """True once `pid` no longer runs (missing, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_run_captures_output_and_exit_code(system: LocalSystem) -> None:
    result = system.run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.timed_out


def test_run_of_a_list_skips_the_shell(system: LocalSystem) -> None:
    result = system.run(["printf", "%s|", "a b", "$HOME"])
    assert result.stdout == "a b|$HOME|"


def test_run_of_a_missing_program_returns_127(system: LocalSystem) -> None:
    result = system.run(["/no/such/program"])
    assert result.returncode == 127
    assert "/no/such/program" in result.stderr


def test_run_gives_a_minimal_environment_with_reconciler_root(
    system: LocalSystem, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY_VARIABLE", "x")
    result = system.run("env", env={"EXTRA": "1"})
    variables = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert variables["RECONCILER_ROOT"] == str(root)
    assert variables["EXTRA"] == "1"
    assert variables["LANG"] == "C.UTF-8"
    assert "LEAKY_VARIABLE" not in variables


def test_run_reads_stdin_from_dev_null_in_the_root_by_default(
    system: LocalSystem, root: Path
) -> None:
    result = system.run("cat; pwd", timeout=5)
    assert result.stdout == f"{root}\n"
    assert not result.timed_out


def test_run_timeout_kills_the_whole_process_group(system: LocalSystem) -> None:
    result = system.run("sleep 100 & echo $!; sleep 100", timeout=0.5)
    assert result.timed_out
    assert result.returncode < 0
    grandchild = int(result.stdout.split()[0])
    wait_until(lambda: gone(grandchild), 30, "the grandchild killed with its group")


def test_run_timeout_escalates_to_sigkill_when_sigterm_is_ignored(system: LocalSystem) -> None:
    result = system.run("trap '' TERM; echo ready; while :; do sleep 0.1; done", timeout=0.3)
    assert result.timed_out
    assert result.returncode == -9


def test_run_returns_when_command_leaves_a_background_child(system: LocalSystem) -> None:
    result = system.run("sleep 30 & echo $!")
    child = int(result.stdout.strip())
    try:
        assert result.returncode == 0
        assert not gone(child), "run returned while its background child still runs"
    finally:
        os.kill(child, 9)


def test_run_keeps_only_the_tail_of_large_output(system: LocalSystem) -> None:
    result = system.run(f"head -c {OUTPUT_LIMIT * 3} /dev/zero | tr '\\0' a; echo END")
    assert result.stdout.endswith("aEND\n")
    assert result.stdout.startswith(f"[{OUTPUT_LIMIT * 2 + 4} earlier bytes dropped]")


def test_lock_holder_is_none_for_a_free_or_missing_lock_file(
    system: LocalSystem, root: Path
) -> None:
    assert system.lock_holder("/etc/lock") is None
    assert system.lock_holder("/nowhere/lock") is None
    (root / "etc" / "lock").touch()
    assert system.lock_holder("/etc/lock") is None


def test_lock_holder_names_the_process_holding_the_lock(system: LocalSystem, root: Path) -> None:
    with lock_held(root / "etc" / "lock") as holder:
        assert system.lock_holder("/etc/lock") == holder.pid
        assert ReadOnlySystem(system).lock_holder("/etc/lock") == holder.pid


def test_lock_holder_refuses_a_symlinked_lock_file(
    system: LocalSystem, root: Path, tmp_path: Path
) -> None:
    with lock_held(tmp_path / "elsewhere"):
        (root / "etc" / "lock").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(UnsafePath, match="it is a symlink"):
            system.lock_holder("/etc/lock")
