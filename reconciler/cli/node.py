"""Commands that work on one node: audit and apply."""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING, Literal

import click

from reconciler.cli import exitcodes
from reconciler.cli.common import StopFlag, collector_paused, emit, repo_options
from reconciler.errors import ReconcilerError
from reconciler.severity import Severity
from reconciler.statedir import AGE_IDENTITY, StateDir

if TYPE_CHECKING:
    from reconciler.record.repeat import Printed
    from reconciler.record.report import RunReport


def register(group: click.Group) -> None:
    group.add_command(audit)
    group.add_command(apply_cmd)


def node_options(func: click.decorators.FC) -> click.decorators.FC:
    """Options shared by audit and apply."""
    for option in reversed([
        click.option("--node", default=None, help="Node name (default: this host's FQDN)."),
        click.option("--root", default="/", show_default=True,
                     type=click.Path(file_okay=False),
                     help="Directory the node's paths live under."),
        click.option("--state-dir", default=None,
                     help="Where reconciler keeps its own state "
                          "(default: var/lib/reconciler under --root)."),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                     show_default=True, help="Output for people or machines."),
        click.option("--host-commands/--no-host-commands", default=None,
                     help="Run commands and services on this host even with a --root "
                          "other than / (default: only with --root /)."),
        click.option("--wait", type=float, default=0.0, show_default=True,
                     help="Seconds to wait for another run to finish."),
        click.option("--debug", is_flag=True, help="Log every system call to stderr."),
        click.option("--identity", default=AGE_IDENTITY, show_default=True,
                     help="The node's age identity, to decrypt the secrets it renders."),
        click.option("--verbose", "-v", is_flag=True,
                     help="Also list actions in sync, and print every diff "
                          "(text output otherwise shows the first 20)."),
    ]):
        func = option(func)
    return func


def node_run(
    mode: Literal["audit", "change"], repo: str, rev: str | None, node: str | None, root: str,
    state_dir: str | None, fmt: str, host_commands: bool | None, wait: float, debug: bool,
    verbose: bool, max_severity: str | None, identity: str,
) -> None:
    """One run from the working tree (or --rev), recorded in the state directory like a
    run from git (history, last-run.json, metrics), so `status`, `log` and `check` see it."""
    from reconciler.cli.progress import on_terminal
    from reconciler.plan.probe import Quiet
    from reconciler.record.recorder import Recorder
    from reconciler.run import Run, RunClock, perform, refuse
    from reconciler.source.worktree import WorkTreeSource

    name = node or socket.getfqdn()
    root = os.path.abspath(root)
    state = StateDir.of(state_dir) if state_dir else StateDir.under(root)
    ceiling = Severity.parse(max_severity) if max_severity else None
    clock = RunClock()
    plain = fmt == "text" and not verbose and not debug
    with collector_paused(), StopFlag() as stop, on_terminal("starting") as progress:
        run = Run(node=name, mode=mode, root=root, state=state,
                  source=WorkTreeSource(repo, rev), ceiling=ceiling,
                  host_commands=host_commands, wait=wait, should_stop=stop,
                  stopped_by=lambda: stop.signal,
                  log_calls=(lambda line: click.echo(line, err=True)) if debug else None,
                  identity=identity, quiet_record=True, recorder=Recorder(state, name, root),
                  # Drifted paths alone planned (run.quiet_cycle), and an audit's text
                  # kept to say again (record/repeat.py), when the report shows only
                  # them: not with --verbose (every action), JSON or --debug.
                  quiet_check=plain, shown=_as_piped if plain else None,
                  progress=progress or Quiet())
        try:
            report = perform(run)
        except ReconcilerError as exc:  # the run could not start: lock held, unusable directory
            report = refuse(name, mode, root, None, exc, clock, ceiling)
        emit(report, fmt, verbose)
        sys.exit(report.exit_code)


def _as_piped(report: RunReport) -> Printed:
    from reconciler.cli.show import as_piped

    return as_piped(report)


@click.command(epilog=exitcodes.HELP)
@repo_options
@node_options
def audit(repo: str, rev: str | None, node: str | None, root: str, state_dir: str | None,
          fmt: str, host_commands: bool | None, wait: float, debug: bool, identity: str,
          verbose: bool) -> None:
    """Report how the node differs from its configuration; change nothing."""
    node_run("audit", repo, rev, node, root, state_dir, fmt, host_commands, wait, debug,
             verbose, None, identity)


@click.command("apply", epilog=exitcodes.HELP)
@repo_options
@node_options
@click.option("--max-severity", type=click.Choice([s.name.lower() for s in Severity]),
              default=None, help="Ceiling for this run (default: from policy).")
def apply_cmd(repo: str, rev: str | None, node: str | None, root: str, state_dir: str | None,
              fmt: str, host_commands: bool | None, wait: float, debug: bool, identity: str,
              verbose: bool, max_severity: str | None) -> None:
    """Make the node match its configuration, within the severity ceiling."""
    node_run("change", repo, rev, node, root, state_dir, fmt, host_commands, wait, debug,
             verbose, max_severity, identity)
