"""Commands driven by agent.toml: run, status, log, rollback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler import statedir as paths
from reconciler.cli.common import StopFlag, handles_errors
from reconciler.cli.node import EXIT_CODES_HELP, emit
from reconciler.compile.nodeconfig import Severity
from reconciler.errors import UsageError
from reconciler.statedir import AGENT_CONFIG

if TYPE_CHECKING:
    from reconciler.agent.settings import AgentConfig
    from reconciler.record.report import RunReport

F = TypeVar("F", bound=Callable[..., Any])

EXIT_NEVER_RAN = 3  # `status` of a node without state, as LSB status says "not running"
_SHOWN_PROBLEMS = 10  # why the last run was refused; the rest are in last-run.json


def register(group: click.Group) -> None:
    for command in (run, status, log, rollback):
        group.add_command(command)


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
        click.option("--interval", type=int, default=None),
        click.option("--splay", type=int, default=None),
        click.option("--fetch-timeout", type=float, default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_config(config_path: str | None, **flags: Any) -> AgentConfig:
    """agent.toml (if present, or named) with the given flags on top."""
    from reconciler.agent import settings as agentconf

    flags = {k: v for k, v in flags.items() if v not in (None, ())}
    if "mirrors" in flags:
        flags["mirrors"] = list(flags["mirrors"])
    path = config_path or AGENT_CONFIG
    if config_path is not None or os.path.exists(path):
        return agentconf.merge_overrides(agentconf.load(path), **flags)
    if "remote" not in flags:
        raise UsageError.because(f"no agent settings: {path} does not exist and no --remote given")
    # An empty, unvalidated base: merge_overrides validates the flags and names each bad one.
    return agentconf.merge_overrides(agentconf.AgentConfig.model_construct(), **flags)


@click.command(epilog=EXIT_CODES_HELP)
@agent_options
@click.option("--allow-rewind", is_flag=True,
              help="Accept a commit that does not descend from the last applied one.")
@click.option("--retry-refused", is_flag=True, help="Try a tip that was refused before.")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another run to finish.")
@click.option("--host-commands/--no-host-commands", default=None,
              help="Run commands and services even with a root other than /.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--verbose", "-v", is_flag=True)
@handles_errors
def run(config_path: str | None, allow_rewind: bool, retry_refused: bool, wait: float,
        host_commands: bool | None, fmt: str, verbose: bool, **flags: Any) -> None:
    """One full cycle from agent.toml: lock, fetch, verify, compile, render, plan, apply or
    audit, record."""
    from reconciler.cycle import CycleOptions, run_cycle

    cfg = load_config(config_path, **flags)
    stop = StopFlag()
    stop.install()
    report = run_cycle(cfg, CycleOptions(wait=wait, allow_rewind=allow_rewind,
                                         retry_refused=retry_refused,
                                         host_commands=host_commands, should_stop=stop))
    write_metrics(cfg, report)
    emit(report, fmt, verbose)
    sys.exit(stop.exit_code(report))


def write_metrics(cfg: AgentConfig, report: RunReport) -> None:
    """The Prometheus textfile for this run (the agent writes its own after each run)."""
    from reconciler.record import metrics

    metrics.write(metrics.default_path(cfg), report)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


@click.command()
@agent_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handles_errors
def status(config_path: str | None, fmt: str, **flags: Any) -> None:
    """What this node runs and how it went: config commit, tip, last runs, counts, staleness.

    Exits 0, or 3 when the node has no state yet (it never ran)."""
    from reconciler.cycle import subject
    from reconciler.source.cache import SourceState

    cfg = load_config(config_path, **flags)
    state_dir = Path(cfg.state_dir)
    last = _read_json(state_dir / paths.LAST_RUN)
    success = _read_json(state_dir / paths.LAST_SUCCESS)
    source = SourceState.load(state_dir / paths.SOURCE_STATE)
    info: dict[str, Any] = {
        "node": cfg.node,
        "mode": cfg.mode,
        "remote": cfg.remote,
        "branch": cfg.branch,
        "pinned": source.pinned.model_dump(mode="json") if source.pinned else None,
        "last_good": source.last_good,
        "last_good_at": source.last_good_at.isoformat() if source.last_good_at else None,
        "refused": source.refused.model_dump(mode="json") if source.refused else None,
        "last_run": None,
        "last_success": success,
    }
    if last is not None:
        src = last.get("source") or {}
        info["last_run"] = {
            "time": last.get("started"), "result": last.get("result"),
            "exit_code": last.get("exit_code"), "config_commit": last.get("config_commit"),
            "subject": src.get("subject"), "tip": src.get("tip"), "stale": src.get("stale"),
            "counts": last.get("counts"), "problems": last.get("problems") or [],
        }  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        sys.exit(EXIT_NEVER_RAN if last is None else 0)
    click.echo(f"node        {cfg.node} ({cfg.mode} mode)")
    click.echo(f"source      {cfg.remote} " +
               (f"branch {cfg.branch}" if cfg.branch else f"commit {cfg.commit}"))
    if last is None:
        click.echo("last run    never (no state under " + str(state_dir) + ")")
        sys.exit(EXIT_NEVER_RAN)
    run_info = info["last_run"]
    enforced = source.pinned.commit if source.pinned else source.last_good
    if enforced is None:
        click.echo("config      none applied yet")
    else:
        title = run_info["subject"] if enforced == run_info["config_commit"] else \
            subject(cfg, enforced)
        click.echo(f"config      {enforced[:12]} {title or ''}".rstrip())
    click.echo(f"tip seen    {(run_info['tip'] or 'unknown')[:12]}")
    click.echo(f"last run    {_when(run_info['time'])} → {run_info['result']} "
               f"(exit {run_info['exit_code']})")
    click.echo(f"last ok     {_when(success.get('time')) if success else 'never'}")
    counts = run_info["counts"] or {}
    click.echo("counts      " + ", ".join(
        f"{counts.get(k, 0)} {k.replace('_', ' ')}"
        for k in ("in_sync", "pending", "edited_by_hand", "held", "failed", "orphans")))
    if source.pinned:
        click.echo(f"PINNED      to {source.pinned.commit[:12]} since "
                   f"{_when(source.pinned.since)} (reconciler rollback --release)")
    if source.refused:
        click.echo(f"REFUSED     {source.refused.commit[:12]} at "
                   f"{_when(source.refused.at)}: {source.refused.reason}")
    if run_info["stale"]:
        click.echo(f"STALE       {run_info['stale']}")
    for problem in run_info["problems"][:_SHOWN_PROBLEMS]:
        click.echo(f"why         {problem}")
    if len(run_info["problems"]) > _SHOWN_PROBLEMS:
        click.echo(f"            ... and {len(run_info['problems']) - _SHOWN_PROBLEMS} more")
    if source.last_good_at:
        click.echo(f"good since  {_when(source.last_good_at)}")


def _when(moment: datetime | str | None) -> str:
    """A time for people: UTC to the second, and how long ago."""
    if isinstance(moment, str):
        try:
            return _when(datetime.fromisoformat(moment))
        except ValueError:
            return moment
    if moment is None:
        return "unknown"
    ago = int((datetime.now(UTC) - moment).total_seconds())
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({ago}s ago)"


@click.command()
@agent_options
@click.option("-n", "count", type=int, default=20, show_default=True, help="How many runs.")
@click.option("--path", "path", default=None, help="Only runs that touched this node path.")
@handles_errors
def log(config_path: str | None, count: int, path: str | None, **flags: Any) -> None:
    """The node's own history: one run a line, with config commit, result, changed paths."""
    from reconciler.record.history import History

    cfg = load_config(config_path, **flags)
    history = History(Path(cfg.state_dir) / paths.HISTORY, cfg.node)
    entries = history.log(count, path)
    if not entries:
        click.echo("no runs recorded yet")
        return
    for entry in entries:
        commit = entry.trailers.get("Config-Commit", "?")[:12]
        result = entry.trailers.get("Result", "?")
        changed = ", ".join(entry.changed[:6]) + (" …" if len(entry.changed) > 6 else "")
        when = entry.time.strftime("%Y-%m-%d %H:%M:%S")
        refused = entry.trailers.get("Refused-Tip")
        note = f"(tip {refused[:12]} refused) " if refused else ""
        click.echo(f"{entry.sha[:10]} {when} config {commit} {result:<11} {note}{changed}"
                   .rstrip())


@click.command()
@agent_options
@click.option("--to", "target", default=None, help="Config commit to roll back to.")
@click.option("--release", is_flag=True, help="Drop the pin; follow the branch again.")
@click.option("--wait", type=float, default=0.0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handles_errors
def rollback(config_path: str | None, target: str | None, release: bool, wait: float,
             fmt: str, **flags: Any) -> None:
    """Apply an older config commit on purpose and stay pinned there until --release."""
    from reconciler import cycle

    if (target is None) == (not release):
        raise UsageError.because("give either --to REV or --release")
    cfg = load_config(config_path, **flags)
    if target is None:
        released = cycle.release(cfg, wait)
        click.echo(f"released the pin on {released[:12]}: following {cfg.branch or cfg.commit} "
                   "again from the next run" if released else "not pinned: nothing to release")
        return
    cycle.pin(cfg, target, wait)
    report = cycle.run_cycle(cfg, cycle.CycleOptions(wait=wait))
    write_metrics(cfg, report)
    emit(report, fmt, False)
    sys.exit(report.exit_code)
