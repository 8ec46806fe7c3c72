"""Commands that work on one node: audit and apply."""

from __future__ import annotations

import gc
import os
import socket
import sys
from typing import Literal

import click

from reconciler import statedir as paths
from reconciler.cli.common import StopFlag, repo_options
from reconciler.compile.nodeconfig import Severity
from reconciler.errors import Problem, ReconcilerError
from reconciler.record.report import RunReport

EXIT_CODES_HELP = """
\b
Exit codes (a bitmask):
  0  in sync
  1  refused before any change (bad input, lock held, unknown node)
  2  changes made (apply) or drift found (audit)
  4  some action failed
  8  changes held above the severity ceiling
  143, 130  stopped by SIGTERM, SIGINT: the current step finished, the run
            was reported as "interrupted" and the lock released
"""


def register(group: click.Group) -> None:
    group.add_command(audit)
    group.add_command(apply_cmd)


def node_options(func: click.decorators.FC) -> click.decorators.FC:
    """Options shared by audit, apply and run."""
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
        click.option("--verbose", "-v", is_flag=True,
                     help="Also list actions in sync, and print every diff "
                          "(text output otherwise shows the first 20)."),
    ]):
        func = option(func)
    return func


def emit(report: RunReport, fmt: str, verbose: bool) -> None:
    if fmt == "json":
        click.echo(report.model_dump_json(indent=2))
        return
    from rich.console import Console

    from reconciler.cli.show import print_report

    print_report(report, Console(highlight=False), verbose)


def node_run(
    mode: Literal["audit", "change"], repo: str, rev: str | None, node: str | None, root: str,
    state_dir: str | None, fmt: str, host_commands: bool | None, wait: float, debug: bool,
    verbose: bool, max_severity: str | None,
) -> None:
    # One run, then the process exits: the cyclic garbage collector would spend ~10% of a
    # run re-scanning the compiled config and templates, which are all alive anyway.
    gc.disable()
    from reconciler.compile.compiler import load_fleet
    from reconciler.lock import NodeLock
    from reconciler.run import RunClock, converge, default_state_dir, desire, refuse
    from reconciler.source.snapshot import open_snapshot
    from reconciler.system.interface import System
    from reconciler.system.local import LocalSystem
    from reconciler.system.wrappers import LoggingSystem

    name = node or socket.getfqdn()
    root = os.path.abspath(root)
    state = os.path.abspath(state_dir) if state_dir else default_state_dir(root)
    ceiling = Severity.parse(max_severity) if max_severity else None
    clock = RunClock()
    stop = StopFlag()
    stop.install()
    commit = None
    try:
        os.makedirs(state, mode=0o700, exist_ok=True)
        with NodeLock(os.path.join(state, paths.LOCK), wait=wait, should_stop=stop):
            snapshot = open_snapshot(repo, rev)
            commit = snapshot.revision
            desired = desire(load_fleet(snapshot), name,
                             bytecode_dir=os.path.join(state, paths.TEMPLATE_CACHE))
            system: System = LocalSystem(root, host_commands=host_commands,
                                         backup_dir=os.path.join(state, paths.BACKUPS))
            if debug:
                system = LoggingSystem(system, lambda line: click.echo(line, err=True))
            report = converge(desired, system, state, mode, ceiling, stop, clock=clock)
    except ReconcilerError as exc:
        report = refuse(name, mode, root, commit, exc, clock, ceiling)
    except OSError as exc:
        # The state directory or the config repo could not be read or created.
        problem = Problem(exc.strerror or str(exc), str(exc.filename or state))
        report = refuse(name, mode, root, commit, ReconcilerError([problem]), clock, ceiling)
    emit(report, fmt, verbose)
    sys.exit(stop.exit_code(report))


@click.command(epilog=EXIT_CODES_HELP)
@repo_options
@node_options
def audit(repo: str, rev: str | None, node: str | None, root: str, state_dir: str | None,
          fmt: str, host_commands: bool | None, wait: float, debug: bool, verbose: bool) -> None:
    """Report how the node differs from its configuration; change nothing."""
    node_run("audit", repo, rev, node, root, state_dir, fmt, host_commands, wait, debug,
             verbose, None)


@click.command("apply", epilog=EXIT_CODES_HELP)
@repo_options
@node_options
@click.option("--max-severity", type=click.Choice([s.name.lower() for s in Severity]),
              default=None, help="Ceiling for this run (default: from policy).")
def apply_cmd(repo: str, rev: str | None, node: str | None, root: str, state_dir: str | None,
              fmt: str, host_commands: bool | None, wait: float, debug: bool, verbose: bool,
              max_severity: str | None) -> None:
    """Make the node match its configuration, within the severity ceiling."""
    node_run("change", repo, rev, node, root, state_dir, fmt, host_commands, wait, debug,
             verbose, max_severity)
