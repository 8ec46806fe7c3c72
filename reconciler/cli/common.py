"""Shared CLI plumbing: options several commands take, reading agent.toml, printing a run
report, stopping on a signal, and the one place where error values become messages."""

from __future__ import annotations

import functools
import gc
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.cli import exitcodes
from reconciler.errors import ReconcilerError, UsageError
from reconciler.severity import Severity
from reconciler.statedir import AGENT_CONFIG, StateDir

if TYPE_CHECKING:
    from reconciler.agent.settings import AgentConfig
    from reconciler.record.report import RunReport

F = TypeVar("F", bound=Callable[..., Any])

MAX_SHOWN = 200


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one run: it would spend ~10% of the run
    re-scanning the compiled config and templates, which are all alive anyway. It comes
    back on after the run, for a program that goes on (a test running the CLI in-process)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def fail(error: ReconcilerError) -> None:
    """Print the problems (bounded) as `path:line: message` on stderr and exit with the
    error's code; a problem that belongs to no file (unknown node, bad flag) reads
    `error: message`."""
    for problem in error.problems[:MAX_SHOWN]:
        click.echo(str(problem) if problem.path else f"error: {problem.message}", err=True)
    if len(error.problems) > MAX_SHOWN:
        click.echo(f"... and {len(error.problems) - MAX_SHOWN} more problem(s)", err=True)
    sys.exit(exitcodes.for_error(error))


def handles_errors(func: F) -> F:
    """Turn user mistakes (error values) into clean messages, never tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReconcilerError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(exitcodes.interrupted(signal.SIGINT))

    return wrapper  # type: ignore[return-value]


def repo_options(func: F) -> F:
    """--repo and --rev, shared by every command that reads the config repo."""
    func = click.option("--rev", default=None, metavar="REV",
                        help="Read this commit's tree (not the working tree).")(func)
    func = click.option("--repo", default=".", show_default=True,
                        type=click.Path(file_okay=False), help="The config repo.")(func)
    return func


def agent_options(func: F) -> F:
    """--config plus one flag per agent.toml key (a flag wins over the file)."""
    options = [
        click.option("--config", "config_path", default=None,
                     help=f"Agent settings (default {AGENT_CONFIG})."),
        click.option("--remote", default=None, help="URL of the config repo."),
        click.option("--mirror", "mirrors", multiple=True, help="A mirror URL (repeatable)."),
        click.option("--branch", default=None, help="Branch to follow (default main)."),
        click.option("--commit", default=None, help="Pin this commit instead of a branch."),
        click.option("--node", default=None, help="Node name (default: FQDN)."),
        click.option("--mode", type=click.Choice(["audit", "change"]), default=None),
        click.option("--max-severity", type=click.Choice([s.name.lower() for s in Severity]),
                     default=None),
        click.option("--state-dir", default=None),
        click.option("--root", default=None),
        click.option("--require-signed", type=click.Choice(["none", "head", "range"]),
                     default=None),
        click.option("--allowed-signers", default=None),
        click.option("--gpg-home", default=None),
        click.option("--signer", "signers", multiple=True,
                     help="Who may sign the config (repeatable; default: any trusted key)."),
        click.option("--interval", type=int, default=None),
        click.option("--splay", type=int, default=None),
        click.option("--fetch-timeout", type=float, default=None),
        click.option("--tip-url", default=None,
                     help="The tip file the server publishes: skip git while it says "
                          "nothing moved."),
        click.option("--render-cpu", type=int, default=None,
                     help="CPU seconds rendering the node may take (default 60)."),
        click.option("--render-memory", type=int, default=None,
                     help="MiB of memory rendering the node may add (default 1024)."),
        click.option("--identity", default=None,
                     help="The node's age identity, to decrypt its secrets "
                          "(default /etc/reconciler/age.key)."),
        click.option("--reports", default=None, help="URL for the fleet reports."),
        click.option("--report-mirrors", multiple=True,
                     help="A mirror of the reports URL (repeatable)."),
        click.option("--report-interval", type=int, default=None),
        click.option("--signing-key", default=None, help="The node's report signing key."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_config(config_path: str | None, reading: bool = False, **flags: Any) -> AgentConfig:
    """agent.toml (if present, or named) with the given flags on top. `reading` (status,
    log, check): without agent.toml or --remote, the node's state directory is enough."""
    from reconciler.agent import settings as agentconf

    flags = {k: v for k, v in flags.items() if v not in (None, ())}
    for many in ("mirrors", "report_mirrors", "signers"):
        if many in flags:
            flags[many] = list(flags[many])
    path = config_path or AGENT_CONFIG
    if config_path is not None or os.path.exists(path):
        return agentconf.merge_overrides(agentconf.load(path), **flags)
    if "remote" not in flags and reading:
        return _reading_settings(flags)
    if "remote" not in flags:
        raise UsageError.because(f"no agent settings: {path} does not exist and no --remote given")
    # An empty, unvalidated base: merge_overrides validates the flags and names each bad one.
    return agentconf.merge_overrides(agentconf.AgentConfig.model_construct(), **flags)


def _reading_settings(flags: dict[str, Any]) -> AgentConfig:
    """Settings to read a node's records without agent.toml (after `apply` or `audit`):
    --state-dir, else var/lib/reconciler under --root (where those keep it); the node is
    --node, else the one the last run recorded. No remote: `remote` is empty."""
    from reconciler.agent.settings import AgentConfig
    from reconciler.record import lastrun

    root = Path(os.path.abspath(flags.get("root", "/")))
    state = StateDir.of(flags["state_dir"]) if "state_dir" in flags else StateDir.under(root)
    node = flags.get("node")
    if node is None:
        try:
            last = lastrun.last_run(state)
        except ReconcilerError:
            last = None
        node = last.node if last is not None else socket.getfqdn()
    return AgentConfig.model_construct(remote="", node=node, state_dir=state.path, root=root,
                                       interval=flags.get("interval"))


def mode_origin(config_path: str | None, flags: dict[str, Any]) -> str:
    """What set the agent's mode when it is set: the --mode flag, else agent.toml (a mode
    in neither leaves the decision to the fleet's policy)."""
    return "--mode" if flags.get("mode") else config_path or AGENT_CONFIG


def emit(report: RunReport, fmt: str, verbose: bool) -> None:
    """The run report on stdout: JSON for machines, or a table and diffs for people."""
    if fmt == "json":
        click.echo(report.model_dump_json(indent=2))
        return
    from reconciler.cli.show import print_report

    print_report(report, verbose)


class StopFlag:
    """Set by SIGTERM/SIGINT inside `with StopFlag() as stop:`: the run finishes the file it
    is on, records, and stops; the first signal says so on stderr. Leaving the block puts
    the previous handlers back, so a program that goes on after the command (a test
    running it in-process) is unchanged."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def stopping(self) -> bool:
        return self.signal is not None

    def __call__(self) -> bool:
        return self.stopping

    def __enter__(self) -> StopFlag:
        def handler(signum: int, _frame: object) -> None:
            if self.signal is None:
                click.echo(f"{signal.Signals(signum).name}: stopping after the current file",
                           err=True)
            self.signal = signum

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, handler)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
