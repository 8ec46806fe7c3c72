"""The one git runner: results as values, failures naming the command, timeouts that leave
nothing running behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from reconciler.errors import Failed
from reconciler.git import Git, GitFailed, init_bare

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def repo(tmp_path: Path) -> Git:
    git = Git(tmp_path / "repo")
    Git(tmp_path).out("init", "--quiet", str(git.where))
    return git


def test_a_command_that_works_gives_its_output(repo: Git) -> None:
    assert repo.out("rev-parse", "--is-inside-work-tree") == "true\n"
    assert repo.ok("rev-parse", "--is-bare-repository") == "false\n"


def test_a_command_that_fails_is_a_value_not_an_exception(repo: Git) -> None:
    done = repo.run("rev-parse", "--verify", "--quiet", "no-such-branch")

    assert (done.ok, done.status) == (False, 1)
    assert repo.ok("rev-parse", "--verify", "--quiet", "no-such-branch") is None


def test_a_command_that_must_work_fails_naming_the_command_and_the_repo(repo: Git) -> None:
    with pytest.raises(GitFailed) as caught:
        repo.out("-c", "core.quotePath=false", "cat-file", "blob", "HEAD:missing")

    assert isinstance(caught.value, Failed)
    problem = caught.value.problems[0]
    assert problem.path == str(repo.where)
    assert problem.message.startswith("git cat-file failed: ")


def test_a_command_past_its_timeout_is_killed_with_the_processes_it_started(
    repo: Git, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    hang = f"!sleep 600 & echo $! > {pid_file}; wait"

    for timeout in (1, 4, 16):  # longer only if a loaded machine cut it off before the child
        done = repo.run("-c", f"alias.hang={hang}", "hang", timeout=timeout)
        if pid_file.exists():
            break

    assert not done.ok
    assert f"timed out: did not complete in {timeout} s" in done.stderr
    assert _ends(int(pid_file.read_text())), "the child of the killed command still runs"


def _ends(pid: int) -> bool:
    """Whether `pid` is gone (or a zombie) within a bound far below the child's 600 s: a
    killed process takes a moment to finish exiting."""
    deadline = time.monotonic() + 60
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _running(pid: int) -> bool:
    """Whether `pid` is alive (a killed child waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_stdin_reaches_the_command(repo: Git) -> None:
    blob = repo.out("hash-object", "-w", "--stdin", stdin=b"hello\n").strip()

    assert repo.run("cat-file", "blob", blob).stdout == b"hello\n"


def test_network_commands_get_an_environment_that_never_prompts(repo: Git) -> None:
    env = set(repo.run("-c", "alias.env=!env", "env", network=True).out.splitlines())

    assert {"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "SSH_ASKPASS=true"} <= env


def test_commands_run_in_a_session_of_their_own(repo: Git) -> None:
    show_session = f"!{sys.executable} -c 'import os; print(os.getsid(0))'"

    session = int(repo.out("-c", f"alias.session={show_session}", "session"))

    assert session != os.getsid(0)


def test_a_bare_repository_is_made_on_main_with_its_settings_as_git_reads_them(
        tmp_path: Path) -> None:
    path = tmp_path / "made.git"

    done = init_bare(path, {"user.name": 'A "quoted" \\name', "user.email": "a@b",
                            "gc.autoDetach": "false"})

    git = Git(path)
    assert done.ok
    assert git.out("rev-parse", "--is-bare-repository") == "true\n"
    assert git.out("symbolic-ref", "HEAD") == "refs/heads/main\n"
    assert git.out("config", "--get-regexp", "^(user|gc)\\.") == (
        'user.name A "quoted" \\name\nuser.email a@b\ngc.autodetach false\n')
    assert not (path / "hooks").exists()  # no sample hooks copied in
