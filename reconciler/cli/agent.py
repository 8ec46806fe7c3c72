"""Commands for running reconciler on a node for good: agent, check, install-units."""

from __future__ import annotations

import functools
import gc
import os
import shutil
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import click

from reconciler.cli.common import agent_options, collector_paused, handles_errors, load_config
from reconciler.errors import ReconcilerError, UsageError
from reconciler.statedir import AGENT_CONFIG, StateDir

UNITS = ("reconciler-agent.service", "reconciler-run.service", "reconciler-run.timer")
UNIT_EXEC = "/usr/local/bin/reconciler"  # the command path written in the shipped units


def register(group: click.Group) -> None:
    for command in (agent, check, install_units):
        group.add_command(command)


@click.command()
@agent_options
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="One line per event on stderr, as key=value or JSON.")
@click.option("--metrics-file", default=None,
              help="Prometheus textfile written after every run "
                   "(default <state-dir>/reconciler.prom).")
@click.option("--host-commands/--no-host-commands", default=None,
              help="Run commands and services even with a root other than /.")
@click.option("--debounce", type=click.FloatRange(0.01, 10.0), default=0.2, show_default=True,
              help="Seconds without a new file event before drift is audited.")
@handles_errors
def agent(config_path: str | None, log_format: str, metrics_file: str | None,
          host_commands: bool | None, debounce: float, **flags: Any) -> None:
    """Run until stopped: a full cycle every interval (offset by the node's splay), and
    drift on managed paths audited (healed in change mode) as it happens.

    \b
    SIGTERM/SIGINT  finish the current step, record, release the lock, exit 0
    SIGHUP          re-read agent.toml
    SIGUSR1         run a full cycle now
    """
    with collector_paused():
        from reconciler.agent.daemon import Agent, EventLog
    # What the imports built lives as long as the agent: frozen, no collection of any
    # cycle scans it again (nor did one during the imports, a fifth of their time).
    gc.freeze()
    load = functools.partial(load_config, config_path, **flags)
    metrics_path = Path(os.path.abspath(metrics_file)) if metrics_file else None
    runner = Agent(load, EventLog("json" if log_format == "json" else "text"),
                   metrics_file=metrics_path, host_commands=host_commands, quiet=debounce)
    sys.exit(runner.serve())


@click.command()
@agent_options
@click.option("--warn-age", type=click.FloatRange(min=0, min_open=True), default=3.0,
              show_default=True,
              help="WARNING when the last run, or the source it used, is older than this "
                   "many intervals.")
@click.option("--crit-age", type=click.FloatRange(min=0, min_open=True), default=6.0,
              show_default=True,
              help="CRITICAL when the last run is older than this many intervals.")
def check(config_path: str | None, warn_age: float, crit_age: float, **flags: Any) -> None:
    """Nagios/Icinga plugin: judge the last run from the state directory.

    \b
    OK        in sync and fresh
    WARNING   drift held, edited by hand or pending; run or source too old
    CRITICAL  failed actions; a refused commit; run far too old
    UNKNOWN   no state (or unusable settings)
    The interval is agent.toml's (or --interval), else 300 s.
    """
    from reconciler.agent import nagios

    try:
        cfg = load_config(config_path, reading=True, **flags)
    except ReconcilerError as exc:
        first = exc.problems[0] if exc.problems else None
        reason = str(first) if first is not None and first.path else (
            first.message if first is not None else "bad settings")
        click.echo(f"{nagios.PREFIX} UNKNOWN - {reason}")
        sys.exit(int(nagios.Status.UNKNOWN))
    limits = nagios.Thresholds(float(cfg.interval or nagios.DEFAULT_INTERVAL), warn_age, crit_age)
    verdict = nagios.evaluate(nagios.read_state(StateDir(cfg.state_dir)), datetime.now(UTC),
                              limits)
    click.echo(verdict.line)
    sys.exit(int(verdict.status))


def _shipped_units() -> Path:
    return Path(str(resources.files("reconciler") / "data" / "systemd"))


@click.command("install-units")
@click.option("--dest", default="/etc/systemd/system", show_default=True,
              type=click.Path(file_okay=False), help="Where systemd reads unit files.")
@click.option("--exec", "executable", default=None,
              help="The reconciler command the units run (default: this one).")
@click.option("--config", "config_path", default=AGENT_CONFIG, show_default=True,
              help="The agent.toml the units point at.")
@handles_errors
def install_units(dest: str, executable: str | None, config_path: str) -> None:
    """Install the systemd units: the always-running agent, and a run service + timer for
    those who prefer one-shot runs. Enable one of the two, not both."""
    for target in install_unit_files(dest, executable, config_path):
        click.echo(f"installed {target}")
    click.echo("next: systemctl daemon-reload && systemctl enable --now reconciler-agent.service")
    click.echo("  or: systemctl daemon-reload && systemctl enable --now reconciler-run.timer")


def install_unit_files(dest: str, executable: str | None, config_path: str) -> list[Path]:
    """Write the shipped units into `dest`, running `executable` (default: this
    reconciler) on `config_path`; the paths written (also used by `bootstrap`)."""
    command = executable or shutil.which("reconciler") or os.path.abspath(sys.argv[0])
    if not os.path.isabs(command) or any(c.isspace() for c in command):
        raise UsageError.because(f"--exec must be an absolute path without spaces: {command!r}")
    if not os.path.isabs(config_path) or any(c.isspace() for c in config_path):
        raise UsageError.because(f"--config must be an absolute path without spaces: "
                                 f"{config_path!r}")
    source = _shipped_units()
    written = []
    try:
        os.makedirs(dest, exist_ok=True)
        for name in UNITS:
            text = (source / name).read_text(encoding="utf-8")
            text = text.replace(UNIT_EXEC, command).replace(AGENT_CONFIG, config_path)
            target = Path(dest) / name
            temp = target.with_name(f".{name}.tmp")
            temp.write_text(text, encoding="utf-8")
            temp.chmod(0o644)
            temp.replace(target)
            written.append(target)
    except OSError as exc:
        raise UsageError.because(f"cannot install the units into {dest}: "
                                 f"{exc.strerror or exc}") from None
    return written
