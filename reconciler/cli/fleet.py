"""`reconciler fleet`: read what every node published (status, nodes, show, serve), and
the node's side of publishing (keygen, push) and the server's (check-push)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from reconciler import durations
from reconciler.cli.common import handles_errors
from reconciler.errors import UsageError
from reconciler.statedir import AGENT_CONFIG, SIGNING_KEY

RESULTS = ["failed", "reverted", "held", "drift", "pending", "stale", "silent", "refused",
           "changed", "in-sync", "interrupted", "unreadable"]


def register(group: click.Group) -> None:
    group.add_command(fleet)


def duration(text: str) -> timedelta:
    """`90`, `90s`, `15m`, `2h`, `1d` as a timedelta."""
    parsed = durations.parse(text)
    if parsed is None:
        raise UsageError.because(f"bad duration {text!r} (expected {durations.EXAMPLES})")
    return parsed


def default_sources(config: str | None) -> list[str]:
    """Where reports are when no --reports is given: the agent's reports URL (or its
    config remote), else the `origin` of the git repository in the current directory."""
    from reconciler.agent import settings as agentconf

    path = Path(config or AGENT_CONFIG)
    if config is not None or path.is_file():
        cfg = agentconf.load(path)
        return [cfg.reports or cfg.remote]
    done = subprocess.run(["git", "config", "--get", "remote.origin.url"], capture_output=True,
                          text=True, check=False)
    if done.returncode == 0 and done.stdout.strip():
        return [done.stdout.strip()]
    raise UsageError.because("where are the reports? give --reports URL|PATH (or run this in "
                             "a clone of the config repo, or on a node with agent.toml)")


def _reading_options(func: Any) -> Any:
    for option in reversed([
        click.option("--reports", "sources", multiple=True, metavar="URL|PATH",
                     help="A reports repository (repeatable; default: the config remote)."),
        click.option("--config", "config", default=None,
                     help=f"Agent settings naming the reports URL (default {AGENT_CONFIG})."),
        click.option("--stale", default="2h", show_default=True,
                     help="A node with no report for this long is silent."),
        click.option("--timeout", type=float, default=60.0, show_default=True,
                     help="Seconds to fetch the reports of a remote URL."),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text"),
    ]):
        func = option(func)
    return func


def _load(sources: tuple[str, ...], config: str | None, stale: str, timeout: float) -> Any:
    from reconciler.fleet import read, summary

    specs = list(sources) or default_sources(config)
    reading = read.read(specs, timeout=timeout)
    status = summary.summarize(reading.entries, datetime.now(UTC), duration(stale),
                               reading.warnings)
    return specs, reading, status


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
def fleet() -> None:
    """The fleet's reports: what every node runs and did, read from git."""


@fleet.command()
@_reading_options
@handles_errors
def status(sources: tuple[str, ...], config: str | None, stale: str, timeout: float,
           fmt: str) -> None:
    """One screen: nodes per state and config commit, clusters by classes, silent nodes,
    refused commits, pinned and behind nodes."""
    from reconciler.fleet import text

    specs, _, summary = _load(sources, config, stale, timeout)
    if fmt == "json":
        _echo_json(summary.model_dump(mode="json"))
        return
    for line in text.status_lines(summary, specs):
        click.echo(line)


@fleet.command()
@_reading_options
@click.option("--result", type=click.Choice(RESULTS), default=None,
              help="Only nodes in this state (stale = silent).")
@click.option("--class", "cls", default=None)
@click.option("--product", default=None)
@click.option("--cluster", default=None)
@click.option("--commit", default=None, metavar="REV", help="Only nodes running this commit.")
@handles_errors
def nodes(sources: tuple[str, ...], config: str | None, stale: str, timeout: float, fmt: str,
          result: str | None, cls: str | None, product: str | None, cluster: str | None,
          commit: str | None) -> None:
    """List nodes with their state, config commit and last report's age."""
    from reconciler.fleet import summary, text

    _, reading, status_ = _load(sources, config, stale, timeout)
    rows = summary.select([summary.row(e, status_.now, duration(stale)) for e in reading.entries],
                          result, cls, product, cluster, commit)
    if fmt == "json":
        _echo_json([r.model_dump(mode="json") for r in rows])
        return
    for line in text.node_lines(rows):
        click.echo(line)


@fleet.command()
@_reading_options
@click.argument("node")
@click.option("--history", "limit", type=int, default=20, show_default=True,
              help="How many reports of the history to list.")
@handles_errors
def show(sources: tuple[str, ...], config: str | None, stale: str, timeout: float, fmt: str,
         node: str, limit: int) -> None:
    """NODE's last report (changes held, failed, drifted, with diffs) and its history."""
    from reconciler.fleet import read, summary, text

    _, reading, status_ = _load(sources, config, stale, timeout)
    entry = next((e for e in reading.entries if e.node == node), None)
    if entry is None:
        raise UsageError.because(f"no report from {node!r} ({len(reading.entries)} nodes "
                                 "have reported)")
    node_row = summary.row(entry, status_.now, duration(stale))
    history = read.history(entry.git_dir, node, limit)
    if fmt == "json":
        _echo_json({"node": node_row.model_dump(mode="json"),
                    "report": entry.report.model_dump(mode="json") if entry.report else None,
                    "history": [h.__dict__ for h in history]})
        return
    for line in text.show_lines(node_row, entry.report, history):
        click.echo(line)


@fleet.command()
@click.option("--reports", "sources", multiple=True, metavar="URL|PATH",
              help="A reports repository (repeatable; default: the config remote).")
@click.option("--config", "config", default=None, help="Agent settings naming the reports URL.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where to serve (loopback unless you say otherwise).")
@click.option("--stale", default="2h", show_default=True)
@click.option("--refresh", type=float, default=5.0, show_default=True,
              help="Seconds between looks at the reports (fetches for a URL).")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@handles_errors
def serve(sources: tuple[str, ...], config: str | None, listen: str, stale: str,
          refresh: float, timeout: float) -> None:
    """Serve the fleet page (read-only), refreshed as reports arrive."""
    from reconciler.fleet import web

    host, port = web.parse_listen(listen)
    specs = list(sources) or default_sources(config)
    if not web.is_loopback(host):
        click.echo(f"warning: serving on {host}: anyone who reaches it reads every node's "
                   "reports", err=True)
    click.echo(f"serving the fleet page on http://{web.url_host(host)}:{port}/ "
               f"(reports: {', '.join(specs)})", err=True)
    web.serve(specs, host, port, duration(stale), refresh, timeout)


@fleet.command()
@click.option("--config", "config", default=None,
              help=f"Agent settings: node name and key path (default {AGENT_CONFIG}).")
@click.option("--key", default=None, help=f"Private key path (default {SIGNING_KEY}).")
@click.option("--node", default=None, help="Node name (default: agent.toml's, or the FQDN).")
@click.option("--force", is_flag=True, help="Replace an existing key (a rotation).")
@handles_errors
def keygen(config: str | None, key: str | None, node: str | None, force: bool) -> None:
    """Create this node's SSH key for signing its reports; print where to register it."""
    from reconciler.agent import settings as agentconf
    from reconciler.fleet import keys

    path = Path(config or AGENT_CONFIG)
    cfg = agentconf.load(path) if config is not None or path.is_file() else None
    name = node or (cfg.node if cfg else socket.getfqdn())
    private = Path(key).absolute() if key else cfg.signing_key if cfg else Path(SIGNING_KEY)
    public, created = keys.generate(private, name, force)
    click.echo(f"{'created' if created else 'kept the existing'} signing key {private} "
               f"(public key {private}.pub)")
    click.echo(public)
    click.echo("register it in the config repo (a merge request), so the reports server "
               "accepts this node's reports:")
    click.echo(f"  mkdir -p keys/nodes/{name} && echo '{public}' > {keys.registered_path(name)}")


@fleet.command()
@click.option("--config", "config", default=AGENT_CONFIG, show_default=True)
@handles_errors
def push(config: str) -> None:
    """Push the reports this node has not published yet, now (a run does it in the
    background). Exits 1 when no reports URL took them."""
    from reconciler.agent import settings as agentconf
    from reconciler.fleet import publish
    from reconciler.fleet.push import drain

    cfg = agentconf.load(config)
    target = publish.Target.of(cfg)
    if not target.key.is_file():
        raise UsageError.because(f"no signing key at {target.key} (reconciler fleet keygen)")
    outcome = drain(target.reports_dir, cfg.node, target.key, target.urls, target.timeout)
    for error in outcome.errors:
        click.echo(f"error: {error}", err=True)
    if outcome.busy:
        click.echo("another push is already waiting to run; it will publish these reports")
        return
    if outcome.pushed_to is not None:
        done = f"pushed {(outcome.tip or '')[:12]} to {outcome.pushed_to}"
    else:
        done = "not pushed" if outcome.errors else "nothing new to push"
    click.echo(f"committed {outcome.committed} report(s); {done}")
    if outcome.errors and outcome.pushed_to is None:
        sys.exit(1)


@fleet.command("check-push")
@handles_errors
def check_push() -> None:
    """Run by the reports repository's pre-receive hook: read `old new ref` lines on
    stdin and refuse any that is not a well-signed report of a fleet node."""
    from reconciler.fleet import receive

    refusals = receive.check(Path("."), sys.stdin.read())
    for refusal in refusals:
        click.echo(f"pre-receive: {refusal}", err=True)
    sys.exit(1 if refusals else 0)
