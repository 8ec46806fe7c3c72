"""Run the `reconciler` command line for a test: in this process by default, as a real
process where the test is about processes.

In-process runs go through click's CliRunner with the environment and working directory
a process would have had, so a test reads the same exit code, stdout and stderr either
way, without paying for an interpreter start and the imports (most of a command's time
in a small test). Keep real processes for what only a process shows: signals, hooks run
by git, the agent daemon, a terminal, the installed console script itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main

RECONCILER = str(Path(sys.executable).with_name("reconciler"))


def reconciler(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    process: bool = False,
    timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` with exactly `env` (default: this process's) in `cwd` (default:
    the current directory), reading `stdin` if given; `process=True` starts the installed
    script instead."""
    argv = [str(arg) for arg in args]
    environment = dict(os.environ if env is None else env)
    if process:
        return subprocess.run([RECONCILER, *argv], cwd=cwd, env=environment, input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)
    with _environment(environment), contextlib.chdir(cwd or os.getcwd()):
        result = CliRunner().invoke(main, argv, input=stdin, prog_name="reconciler",
                                    catch_exceptions=False, color=False)
    return subprocess.CompletedProcess([RECONCILER, *argv], result.exit_code, result.stdout,
                                       result.stderr)


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ is exactly `env` inside the block (git and the CLI read it from there)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def fresh_python(code: str, *, stdin: str | None = None, cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`code` run by a fresh interpreter (what it imports starts from nothing); it must
    exit 0."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, input=stdin, cwd=cwd, env=env)


def quiet_process(argv: list[str]) -> tuple[str, str]:
    """What `entry.quiet_run(argv)` prints in a fresh interpreter, and its answer with
    the engine's libraries it loaded (`0 []`: in sync, none loaded)."""
    probe = ("import sys; from reconciler.entry import quiet_run; "
             f"code = quiet_run({argv!r}); "
             "heavy = sorted({'pydantic', 'jinja2', 'lxml', 'rich', 'click'} & set(sys.modules)); "
             "print(code, heavy)")
    done = fresh_python(probe)
    printed, _, answer = done.stdout.rstrip("\n").rpartition("\n")
    return printed + "\n" if printed else "", answer
