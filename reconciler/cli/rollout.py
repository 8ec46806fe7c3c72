"""`reconciler rollout status [REV]`: how far a config commit has come through the
rollout fleet.xml declares, read from the fleet's published reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from reconciler.cli.common import handles_errors
from reconciler.errors import UsageError
from reconciler.statedir import AGENT_CONFIG


def register(group: click.Group) -> None:
    group.add_command(rollout)


@click.group()
def rollout() -> None:
    """Waves of a config commit: who has it, who waits, what halted."""


@rollout.command()
@click.argument("rev", default="HEAD")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="A clone of the config repo holding REV.")
@click.option("--reports", "sources", multiple=True, metavar="URL|PATH",
              help="A reports repository (repeatable; default: the config remote).")
@click.option("--config", default=None,
              help=f"Agent settings naming the reports URL (default {AGENT_CONFIG}).")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to fetch the reports of a remote URL.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handles_errors
def status(rev: str, repo: str, sources: tuple[str, ...], config: str | None, timeout: float,
           fmt: str) -> None:
    """Each wave's progress towards REV (default HEAD): done, moving, waiting or halted."""
    from reconciler.cli.fleet import default_sources
    from reconciler.compile.compiler import load_fleet
    from reconciler.fleet import read
    from reconciler.git import Git
    from reconciler.rollout import status as rollout_status
    from reconciler.rollout.gate import reached_from
    from reconciler.rollout.progress import progress
    from reconciler.source.snapshot import open_snapshot

    snapshot = open_snapshot(repo, rev)
    commit = snapshot.revision
    if commit is None:
        raise UsageError.because(f"{rev} is not a commit of {repo}")
    fleet = load_fleet(snapshot)
    if fleet.rollout is None:
        raise UsageError.because(f"fleet.xml at {rev} declares no <rollout>")
    git = Git(repo)
    reading = read.read(list(sources) or default_sources(config), timeout=timeout)
    for warning in reading.warnings:
        click.echo(f"warning: {warning}", err=True)
    reports = {entry.node: entry.report for entry in reading.entries}
    waves = progress(fleet.rollout, reports, reached_from(git, commit))
    subject = git.run("log", "-1", "--format=%s", "--end-of-options", commit).out.strip()
    summary = rollout_status.summarize(fleet.rollout, commit, subject or None, waves,
                                       datetime.now(UTC))
    if fmt == "json":
        click.echo(json.dumps(summary.model_dump(mode="json"), indent=2))
        return
    for line in rollout_status.lines(summary):
        click.echo(line)
