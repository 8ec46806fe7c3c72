"""Commands driven by agent.toml: run, status, log, rollback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.agentconf import DEFAULT_PATH, AgentConfig
from reconciler.cli.common import handles_errors
from reconciler.cli.node import EXIT_CODES_HELP, emit
from reconciler.config import Severity
from reconciler.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


def register(group: click.Group) -> None:
    for command in (run, status, log, rollback):
        group.add_command(command)


def agent_options(func: F) -> F:
    """--config plus one flag per agent.toml key (a flag wins over the file)."""
    options = [
        click.option("--config", "config_path", default=None,
                     help=f"Agent settings (default {DEFAULT_PATH})."),
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
    from reconciler import agentconf

    flags = {k: v for k, v in flags.items() if v not in (None, ())}
    if "mirrors" in flags:
        flags["mirrors"] = list(flags["mirrors"])
    path = config_path or DEFAULT_PATH
    if config_path is not None or os.path.exists(path):
        return agentconf.merge_overrides(agentconf.load(path), **flags)
    if "remote" not in flags:
        raise UsageError.because(f"no agent settings: {path} does not exist and no --remote given")
    try:
        base = AgentConfig.model_validate({"remote": flags.pop("remote")})
        return agentconf.merge_overrides(base, **flags)
    except ValueError as exc:
        raise UsageError.because(str(exc)) from None


class StopFlag:
    """Set by SIGTERM/SIGINT: the run finishes its current atomic step, records, and stops."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self) -> bool:
        return self.stopping

    def install(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


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
    emit(report, fmt, verbose)
    sys.exit(report.exit_code)


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
    """What this node runs and how it went: config commit, tip, last runs, counts, staleness."""
    from reconciler.source import SourceState

    cfg = load_config(config_path, **flags)
    state_dir = Path(cfg.state_dir)
    last = _read_json(state_dir / "last-run.json")
    success = _read_json(state_dir / "last-success.json")
    source = SourceState.load(state_dir / "source-state.json")
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
            "counts": last.get("counts"),
        }  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"node        {cfg.node} ({cfg.mode} mode)")
    click.echo(f"source      {cfg.remote} branch {cfg.branch or '-'}")
    if last is None:
        click.echo("last run    never (no state under " + str(state_dir) + ")")
        sys.exit(3)
    run_info = info["last_run"]
    click.echo(f"config      {(run_info['config_commit'] or 'none')[:12]} "
               f"{run_info['subject'] or ''}".rstrip())
    click.echo(f"tip seen    {(run_info['tip'] or 'unknown')[:12]}")
    click.echo(f"last run    {run_info['time']} → {run_info['result']} "
               f"(exit {run_info['exit_code']})")
    click.echo(f"last ok     {success['time'] if success else 'never'}")
    counts = run_info["counts"] or {}
    click.echo("counts      " + ", ".join(
        f"{counts.get(k, 0)} {k.replace('_', ' ')}"
        for k in ("in_sync", "pending", "edited_by_hand", "held", "failed", "orphans")))
    if source.pinned:
        click.echo(f"PINNED      to {source.pinned.commit[:12]} since "
                   f"{source.pinned.since.isoformat()} (reconciler rollback --release)")
    if source.refused:
        click.echo(f"REFUSED     {source.refused.commit[:12]} at "
                   f"{source.refused.at.isoformat()}: {source.refused.reason}")
    if run_info["stale"]:
        click.echo(f"STALE       {run_info['stale']}")
    if source.last_good_at:
        age = datetime.now(UTC) - source.last_good_at
        click.echo(f"on commit   {int(age.total_seconds())}s "
                   f"(since {source.last_good_at.isoformat()})")


@click.command()
@agent_options
@click.option("-n", "count", type=int, default=20, show_default=True, help="How many runs.")
@click.option("--path", "path", default=None, help="Only runs that touched this node path.")
@handles_errors
def log(config_path: str | None, count: int, path: str | None, **flags: Any) -> None:
    """The node's own history: one run a line, with config commit, result, changed paths."""
    from reconciler.history import History

    cfg = load_config(config_path, **flags)
    history = History(Path(cfg.state_dir) / "history", cfg.node)
    entries = history.log(count, path)
    if not entries:
        click.echo("no runs recorded yet")
        return
    for entry in entries:
        commit = entry.trailers.get("Config-Commit", "?")[:12]
        result = entry.trailers.get("Result", "?")
        changed = ", ".join(entry.changed[:6]) + (" …" if len(entry.changed) > 6 else "")
        when = entry.time.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{entry.sha[:10]} {when} config {commit} {result:<11} {changed}")


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
    from reconciler.cycle import SOURCE_STATE, CycleOptions, run_cycle, state_path
    from reconciler.lock import NodeLock
    from reconciler.source import SourceCache, SourceState

    if (target is None) == (not release):
        raise UsageError.because("give either --to REV or --release")
    cfg = load_config(config_path, **flags)
    os.makedirs(cfg.state_dir, mode=0o700, exist_ok=True)
    path = state_path(cfg, SOURCE_STATE)
    with NodeLock(state_path(cfg, "lock"), wait=wait):
        state = SourceState.load(path)
        if release:
            state.unpin().save(path)
            click.echo("released: following the branch again from the next run")
            return
        cache = SourceCache(cfg.state_dir, cfg.remote, cfg.mirrors, cfg.fetch_timeout)
        cache.ensure_healthy()
        cache.fetch()
        assert target is not None
        found = subprocess.run(
            ["git", "-C", str(cache.path), "rev-parse", "--verify", "--quiet",
             "--end-of-options", f"{target}^{{commit}}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if found.returncode != 0 or target.startswith("-"):
            raise UsageError.because(f"unknown config commit {target!r} (after fetching)")
        sha = found.stdout.strip()
        state.pin(sha, f"reconciler rollback --to {target}").save(path)
    report = run_cycle(cfg, CycleOptions(wait=wait, allow_rewind=True))
    emit(report, fmt, False)
    sys.exit(report.exit_code)
