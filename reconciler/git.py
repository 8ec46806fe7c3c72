"""The one way reconciler runs git: bounded in time, never waiting for a person, errors as values.

Each command runs in its own session, so it has no terminal to prompt on, a Ctrl-C
meant for reconciler (which finishes its current step) does not cut it short, and on
a timeout the whole process group is killed: a hung fetch takes its `ssh` or
`git-remote-https` helper with it instead of leaving them to hold the pipes open.
Network commands also get an environment that answers every credential or
passphrase prompt with "no".
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Failed, Problem

TIMEOUT = 300.0  # seconds: a bound for local commands, far above what they take
NETWORK_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
_TAIL_LINES = 3
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Done:
    """What one git command did: its exit status (negative: killed), stdout and stderr."""

    args: tuple[str, ...]
    status: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "surrogateescape")

    @property
    def verb(self) -> str:
        """The git command that ran (`commit` in `-c user.name=x commit -q`)."""
        args = iter(self.args)
        for arg in args:
            if arg == "-c":
                next(args, None)
            elif not arg.startswith("-"):
                return arg
        return "command"

    def tail(self) -> str:
        """The last lines of stderr (else stdout) on one line: what went wrong."""
        text = self.stderr.strip() or self.out.strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return " / ".join(lines[-_TAIL_LINES:]) or "no error output"


class GitFailed(Failed):
    """A git command that had to work did not: `git VERB failed: <its error>` at the repo."""

    @classmethod
    def of(cls, where: str | os.PathLike[str], done: Done) -> GitFailed:
        return cls([Problem(f"git {done.verb} failed: {done.tail()}", str(where))])


class Git:
    """git commands in one repository (or directory): `Git(path).out("rev-parse", "HEAD")`."""

    def __init__(self, where: str | os.PathLike[str]) -> None:
        self.where = Path(where)

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
        network: bool = False,
        max_output: int | None = None,
    ) -> Done:
        """Run `git -C WHERE ARGS`; never raises for git's own failures, see `Done`. With
        `max_output`, a command whose stdout grows past that many bytes is killed there
        (status -1, and stderr says so): what it would print is never held whole."""
        extra = {**(NETWORK_ENV if network else {}), **(env or {})}
        try:
            process = subprocess.Popen(
                ["git", "-C", str(self.where), *args],
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, **extra} if extra else None, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:  # no git on PATH, or `where` is not a directory
            return Done(args, -1, b"", f"cannot run git: {exc.strerror or exc}")
        try:
            if max_output is not None and stdin is None:
                return _bounded(process, args, max_output, timeout)
            out, err = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            out, err = process.communicate()
            err += f"\ntimed out: did not complete in {timeout:g} s".encode()
        except BaseException:  # interrupted: leave no git process behind
            _kill_group(process.pid)
            process.wait()
            raise
        return Done(args, process.returncode, out, err.decode("utf-8", "replace"))

    def out(self, *args: str, stdin: bytes | None = None,
            env: Mapping[str, str] | None = None) -> str:
        """Stdout of a command that must work; `GitFailed` when it does not."""
        done = self.run(*args, stdin=stdin, env=env)
        if not done.ok:
            raise GitFailed.of(self.where, done)
        return done.out

    def ok(self, *args: str) -> str | None:
        """Stdout of a command that may fail for an expected reason (None when it does)."""
        done = self.run(*args)
        return done.out if done.ok else None


def _bounded(process: subprocess.Popen[bytes], args: tuple[str, ...], limit: int,
             timeout: float) -> Done:
    """Read both pipes until the process ends, its stdout passes `limit` bytes, or
    `timeout` runs out; the process group is killed at either bound."""
    assert process.stdout is not None and process.stderr is not None
    out, err = bytearray(), bytearray()
    pipes = {process.stdout.fileno(): out, process.stderr.fileno(): err}
    deadline = time.monotonic() + timeout
    why = ""
    while pipes:
        left = deadline - time.monotonic()
        ready = select.select(list(pipes), [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            why = f"timed out: did not complete in {timeout:g} s"
            break
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                pipes[fd].extend(chunk)
            else:
                del pipes[fd]
        if len(out) > limit:
            why = f"output larger than {limit} bytes: stopped there"
            break
    if why:
        _kill_group(process.pid)
    process.stdout.close()
    process.stderr.close()
    status = process.wait()
    text = err.decode("utf-8", "replace") + (f"\n{why}" if why else "")
    return Done(args, -1 if why else status, bytes(out), text)


def init_bare(path: Path, settings: Mapping[str, str]) -> Done:
    """Create an empty bare repository at `path` on branch main, without git's sample
    hooks, with `settings` (`section.key`: value) in its config: one git process, the
    settings appended in git's config syntax instead of one `git config` process each."""
    done = Git(path.parent).run("init", "--quiet", "--bare", "--template=",
                                "--initial-branch=main", str(path))
    if done.ok and settings:
        sections: dict[str, str] = {}
        for name, value in settings.items():
            section, _, key = name.partition(".")
            quoted = value.replace("\\", "\\\\").replace('"', '\\"')
            sections[section] = sections.get(section, f"[{section}]\n") + f'\t{key} = "{quoted}"\n'
        with (path / "config").open("a") as config:
            config.write("".join(sections.values()))
    return done


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def read_ref(git_dir: Path, ref: str) -> str | None:
    """The commit `ref` names in the repository at `git_dir`, read as git's files backend
    keeps it (the loose ref file, else packed-refs) without starting git; None when
    neither has it. ValueError when the loose file holds anything else (a symbolic ref,
    say): git itself must say what it means."""
    try:
        loose = (git_dir / ref).read_text().strip()
    except FileNotFoundError:
        loose = ""
    except UnicodeDecodeError:
        raise ValueError(f"{git_dir / ref} is not a plain ref") from None
    if loose:
        if _OBJECT_ID.fullmatch(loose):
            return loose
        raise ValueError(f"{git_dir / ref} is not a plain ref")
    try:
        packed = (git_dir / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and _OBJECT_ID.fullmatch(sha):
            return sha
    return None
