"""Commands about the node's runs from agent.toml: run, status, log, rollback."""

from __future__ import annotations

import functools
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli import exitcodes
from reconciler.cli.common import (
    StopFlag,
    agent_options,
    collector_paused,
    emit,
    handles_errors,
    load_config,
    mode_origin,
)
from reconciler.errors import UsageError
from reconciler.statedir import AGENT_CONFIG, StateDir

if TYPE_CHECKING:
    from reconciler.agent.settings import AgentConfig
    from reconciler.record.lastrun import LastSuccess
    from reconciler.record.report import RunReport
    from reconciler.source.state import SourceState

_SHOWN_PROBLEMS = 10  # why the last run was refused; the rest are in last-run.json


def register(group: click.Group) -> None:
    for command in (run, status, log, rollback):
        group.add_command(command)


@click.command(epilog=exitcodes.HELP)
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
    """One full run from agent.toml: lock, fetch, verify, compile, render, plan, apply or
    audit, record."""
    with collector_paused():  # one run, then the process ends
        from reconciler import quietrun
        from reconciler.agent.runs import RunOptions, from_settings
        from reconciler.run import perform

        # Read before the settings, so a file edited meanwhile never passes for these bytes.
        text = _settings_bytes(config_path)
        cfg = load_config(config_path, **flags)
        with StopFlag() as stop:
            report = perform(from_settings(cfg, RunOptions(
                wait=wait, allow_rewind=allow_rewind, retry_refused=retry_refused,
                host_commands=host_commands, should_stop=stop, stopped_by=lambda: stop.signal,
                mode_from=mode_origin(config_path, flags))))
            emit(report, fmt, verbose)
            if text is not None and not (
                    allow_rewind or retry_refused or host_commands is not None
                    or any(value not in (None, ()) for value in flags.values())):
                quietrun.remember(
                    config_path or AGENT_CONFIG, text, "node" in cfg.model_fields_set,
                    {**cfg.model_dump(mode="json"), "max_severity": str(
                        cfg.max_severity) if cfg.max_severity is not None else None},
                    report.result, report.exit_code)
            sys.exit(report.exit_code)


def _settings_bytes(config_path: str | None) -> bytes | None:
    """agent.toml's bytes, for a quiet run to tell its settings unchanged (quietrun.py)."""
    try:
        with open(config_path or AGENT_CONFIG, "rb") as handle:
            return handle.read()
    except OSError:
        return None


@click.command()
@agent_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handles_errors
def status(config_path: str | None, fmt: str, **flags: Any) -> None:
    """What this node runs and how it went: config commit, tip, last runs, counts, staleness.

    Exits 0, or 3 when the node has no state yet (it never ran)."""
    from reconciler.record import lastrun
    from reconciler.source.choice import cache_of
    from reconciler.source.state import RETRY, SourceState

    cfg = load_config(config_path, reading=True, **flags)
    state = StateDir(cfg.state_dir)
    last = lastrun.last_run(state)
    success = lastrun.last_success(state)
    source = SourceState.load(state.source_state)
    if fmt == "json":
        click.echo(json.dumps(_status_document(cfg.node, cfg.mode, cfg.remote, cfg.branch,
                                               source, last, success), indent=2))
        sys.exit(exitcodes.EXIT_NEVER_RAN if last is None else 0)
    click.echo(f"node        {cfg.node} ({_mode_words(cfg, last)})")
    click.echo("source      " + (f"{cfg.remote} " + (f"branch {cfg.branch}" if cfg.branch
                                                      else f"commit {cfg.commit}")
                                   if cfg.remote else "a config repo's working tree or --rev "
                                   "(reconciler apply/audit)"))
    if last is None:
        click.echo(f"last run    never (no state under {state})")
        sys.exit(exitcodes.EXIT_NEVER_RAN)
    seen = last.source
    enforced = source.in_use if cfg.remote else last.config_commit
    if enforced is None:
        click.echo("config      none applied yet" if cfg.remote else "config      working tree")
    else:
        title = seen.subject if seen is not None and enforced == last.config_commit else \
            cache_of(cfg, state).subject(enforced) if cfg.remote else None
        click.echo(f"config      {enforced[:12]} {title or ''}".rstrip())
    click.echo(f"tip seen    {((seen.tip if seen else None) or 'unknown')[:12]}")
    click.echo(f"last run    {_when(last.started)} → {last.result} (exit {last.exit_code})")
    click.echo(f"last ok     {_when(success.time) if success else 'never'}")
    counts = last.counts
    click.echo("counts      " + ", ".join(
        f"{getattr(counts, k)} {k.replace('_', ' ')}"
        for k in ("in_sync", "applied", "failed", "drift", "pending", "held", "orphans")))
    if source.pinned:
        click.echo(f"PINNED      to {source.pinned.commit[:12]} since "
                   f"{_when(source.pinned.since)} (reconciler rollback --release)")
    if source.refused:
        click.echo(f"REFUSED     {source.refused.commit[:12]} at "
                   f"{_when(source.refused.at)}: {source.refused.reason} ({RETRY})")
    if seen is not None and seen.failover:
        click.echo(f"MIRROR      served by {seen.remote}; {seen.failover}")
    if seen is not None and seen.stale and not (seen.pinned and source.pinned is None):
        click.echo(f"STALE       {seen.stale}")
    if seen is not None and seen.rollout:
        click.echo(f"ROLLOUT     {seen.rollout}")
    for problem in last.problems[:_SHOWN_PROBLEMS]:
        click.echo(f"why         {problem}")
    if len(last.problems) > _SHOWN_PROBLEMS:
        click.echo(f"            ... and {len(last.problems) - _SHOWN_PROBLEMS} more")
    if source.last_good_at:
        click.echo(f"good since  {_when(source.last_good_at)}")


def _mode_words(cfg: AgentConfig, last: RunReport | None) -> str:
    """The mode the node runs in and what set it, as its last run saw it."""
    if last is not None and last.mode_from:
        return f"{last.mode} mode, set by {last.mode_from}"
    if last is not None and not cfg.remote:  # `apply` or `audit`: the command is the mode
        return f"{last.mode} mode, by reconciler {'apply' if last.mode == 'change' else 'audit'}"
    return f"{cfg.mode} mode" if cfg.mode else "mode set by the fleet's policy"


def _status_document(
    node: str, mode: str | None, remote: str, branch: str | None, source: SourceState,
    last: RunReport | None, success: LastSuccess | None,
) -> dict[str, Any]:
    """`status --format json`: the node, its source state and a digest of the last run."""
    info: dict[str, Any] = {
        "node": node,
        "mode": mode,
        "remote": remote,
        "branch": branch,
        "pinned": source.pinned.model_dump(mode="json") if source.pinned else None,
        "last_good": source.last_good,
        "last_good_at": source.last_good_at.isoformat() if source.last_good_at else None,
        "refused": source.refused.model_dump(mode="json") if source.refused else None,
        "last_run": None,
        "last_success": success.model_dump(mode="json") if success else None,
    }
    if last is not None:
        run = last.model_dump(mode="json")
        seen = run.get("source") or {}
        info["last_run"] = {
            "time": run["started"], "result": run["result"], "exit_code": run["exit_code"],
            "config_commit": run["config_commit"], "subject": seen.get("subject"),
            "tip": seen.get("tip"), "stale": seen.get("stale"), "rollout": seen.get("rollout"),
            "counts": run["counts"],
            "problems": run["problems"],
        }  # fmt: skip
    return info


def _when(moment: datetime) -> str:
    """A time for people: UTC to the second, and how long ago."""
    from reconciler.timewords import stamp_ago

    return stamp_ago(moment)


@click.command()
@agent_options
@click.option("-n", "count", type=int, default=20, show_default=True, help="How many runs.")
@click.option("--path", "path", default=None, help="Only runs that touched this node path.")
@handles_errors
def log(config_path: str | None, count: int, path: str | None, **flags: Any) -> None:
    """The node's own history: one run a line, with config commit, result, changed paths."""
    from reconciler.record.history import History

    cfg = load_config(config_path, reading=True, **flags)
    history = History(StateDir(cfg.state_dir).history, cfg.node)
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
        standing = _standing(entry.trailers.get("States", ""))
        click.echo(f"{entry.sha[:10]} {when} config {commit} {result:<11} {standing}{note}"
                   f"{changed}".rstrip())


def _standing(states: str) -> str:
    """`drift=1 pending=0 held=17 failed=0` (a States trailer) as `[1 drift, 17 held] `."""
    pairs = [pair.split("=", 1) for pair in states.split() if "=" in pair]
    shown = [f"{count} {state}" for state, count in pairs if count != "0"]
    return f"[{', '.join(shown)}] " if shown else ""


@click.command()
@agent_options
@click.option("--to", "target", default=None, help="Config commit to roll back to.")
@click.option("--release", is_flag=True, help="Drop the pin; follow the branch again.")
@click.option("--wait", type=float, default=0.0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handles_errors
def rollback(config_path: str | None, target: str | None, release: bool, wait: float,
             fmt: str, **flags: Any) -> None:
    """Apply an older config commit on purpose and stay pinned there until --release (only
    when it applied: a held, failed or refused rollback leaves the pin as it was); --release
    follows the branch again at once, with a run."""
    from reconciler.agent.runs import RunOptions, from_settings
    from reconciler.run import perform
    from reconciler.source import rollback

    if (target is None) == (not release):
        raise UsageError.because("give either --to REV or --release")
    cfg = load_config(config_path, **flags)
    say = functools.partial(click.echo, err=fmt == "json")  # the JSON on stdout stays whole
    if target is None:
        released = rollback.release(cfg, wait)
        if released is None:
            say("not pinned: nothing to release")
            return
        say(f"released the pin on {released[:12]}: following {cfg.branch or cfg.commit} "
            "again, from this run on")
    else:
        sha, previous = rollback.pin(cfg, target, wait)
    report = perform(from_settings(cfg, RunOptions(
        wait=wait, mode_from=mode_origin(config_path, flags))))
    emit(report, fmt, False)
    if target is not None:
        if report.result in ("changed", "in-sync") and report.config_commit == sha:
            say(f"pinned to {sha[:12]} until `reconciler rollback --release`")
        else:
            rollback.unpin(cfg, sha, previous, wait)
            say(f"rollback to {sha[:12]} was not applied ({report.result}): the node is not "
                "pinned" + (f" (still pinned to {previous.commit[:12]})" if previous else ""))
    sys.exit(report.exit_code)
