"""Commands that read the config repo: init, validate, nodes, explain, render."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli import exitcodes
from reconciler.cli.common import MAX_SHOWN, handles_errors, repo_options
from reconciler.cli.facts import published, published_option
from reconciler.errors import UsageError
from reconciler.git import Git, GitFailed

if TYPE_CHECKING:
    from reconciler.compile.inventory import Fleet
    from reconciler.compile.nodeconfig import Action, Variable


def register(group: click.Group) -> None:
    for command in (init, validate_cmd, nodes, explain, render):
        group.add_command(command)


def _fleet(repo: str, rev: str | None) -> Fleet:
    from reconciler.compile.compiler import load_fleet
    from reconciler.source.snapshot import open_snapshot

    return load_fleet(open_snapshot(repo, rev))


def example_dir(name: str) -> Path:
    """A directory bundled with the package: repo_layout, templates or hooks."""
    return Path(str(resources.files("reconciler") / "data" / name))


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@handles_errors
def init(directory: str) -> None:
    """Create a new config repo in DIRECTORY holding the example fleet, first commit on main."""
    target = Path(directory)
    try:
        installed = _create_example(target)
    except OSError as exc:
        raise UsageError.because(f"cannot create {directory}: {exc.strerror or exc}") from None
    except GitFailed as exc:
        raise UsageError.because(f"cannot create {directory}: "
                                 f"{exc.problems[0].message}") from None
    click.echo(f"created config repo {target} (branch main) with the example fleet; "
               f"installed {', '.join(Path(p).name for p in installed)}")


def _create_example(target: Path) -> list[str]:
    """Copy the example fleet into `target` (new or empty), commit it on main and install
    the hooks; returns the installed hooks' paths."""
    from reconciler.review.hooks import install_hooks

    if target.exists() and any(target.iterdir()):
        raise UsageError.because(f"{target} exists and is not empty")
    target.mkdir(parents=True, exist_ok=True)
    layout = example_dir("repo_layout")
    for item in sorted(layout.iterdir()):
        if item.is_dir():
            shutil.copytree(item, target / item.name)
        else:
            shutil.copy2(item, target / item.name)
    shutil.copytree(example_dir("templates"), target / "templates")
    shutil.copytree(example_dir("hooks"), target / "hooks")
    for key_file in (target / "keys" / "demo-identities").glob("*.key"):
        key_file.chmod(0o600)  # DEMO ONLY private keys: a node refuses readable ones
    git = Git(target)
    git.out("init", "-q", "-b", "main")
    git.out("add", "-A")
    identity = [] if (git.ok("config", "user.email") or "").strip() else [
        "-c", "user.name=reconciler", "-c", "user.email=reconciler@localhost"]
    git.out(*identity, "commit", "-q", "--no-verify", "-m", "Example fleet from reconciler init")
    return install_hooks(str(target))


@click.command("validate")
@repo_options
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--strict", is_flag=True,
              help="Warnings (selectors matching no node, variables nothing reads, a lone "
                   "node named like a ranged one) are errors too; the hooks use it.")
@published_option
@handles_errors
def validate_cmd(repo: str, rev: str | None, jobs: int | None, strict: bool,
                 facts_dir: str | None) -> None:
    """Check schema, compile every node and render every template; list every error and
    every warning."""
    from reconciler.cli.progress import counter, on_terminal
    from reconciler.review.validate import validate
    from reconciler.source.snapshot import open_snapshot

    with on_terminal("validating nodes") as progress:
        result = validate(open_snapshot(repo, rev), jobs, published(facts_dir),
                          counter(progress))
    for finding in result.findings:
        click.echo(str(finding), err=True)
    for warning in result.warnings[:MAX_SHOWN]:
        click.echo(str(warning), err=True)
    if len(result.warnings) > MAX_SHOWN:
        click.echo(f"... and {len(result.warnings) - MAX_SHOWN} more warning(s)", err=True)
    if strict and result.warnings and result.ok:
        click.echo(f"invalid (--strict): {len(result.warnings)} warning(s)", err=True)
        raise SystemExit(exitcodes.EXIT_REFUSED)
    if not result.ok:
        total = len(result.findings) + result.omitted
        hidden = f", {result.omitted} not shown" if result.omitted else ""
        click.echo(f"invalid: {total} distinct problem(s){hidden}", err=True)
        raise SystemExit(exitcodes.EXIT_REFUSED)
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    click.echo(f"ok: {result.nodes} nodes, {result.classes} classes, {result.files} files rendered "
               f"in {result.seconds:.2f}s{warned}")
    if result.without_facts:
        click.echo(f"{result.without_facts} of these files use facts their node has not "
                   "published: checked with placeholders (--facts DIR)")


@click.command()
@repo_options
@click.option("--class", "cls", default=None, help="Only nodes of this class.")
@click.option("--product", default=None, help="Only nodes of this product.")
@click.option("--cluster", default=None, help="Only nodes of this cluster.")
@handles_errors
def nodes(repo: str, rev: str | None, cls: str | None, product: str | None,
          cluster: str | None) -> None:
    """List node names, one per line."""
    fleet = _fleet(repo, rev)
    known = {
        "class": set(fleet.classes),
        "product": {decl.name.product for decl in fleet.nodes.values()},
        "cluster": {decl.name.cluster for decl in fleet.nodes.values()},
    }
    for what, wanted in (("class", cls), ("product", product), ("cluster", cluster)):
        if wanted is not None and wanted not in known[what]:
            raise UsageError.because(f"unknown {what} {wanted!r} (known: "
                                     f"{', '.join(sorted(known[what])) or 'none'})")
    for name in fleet.node_names(cls, product, cluster):
        click.echo(name)


def _show(value: Any, secret: bool = False) -> str:
    """A variable's value for people; a secret one is never printed."""
    if secret:
        return "(secret)"
    return value if isinstance(value, str) else json.dumps(value)


@click.command()
@repo_options
@click.argument("node")
@click.argument("var", required=False)
@handles_errors
def explain(repo: str, rev: str | None, node: str, var: str | None) -> None:
    """Show how NODE's configuration was resolved (or where VAR comes from)."""
    from rich.console import Console

    from reconciler.cli.show import print_rows
    from reconciler.compile.compiler import compile_node
    from reconciler.compile.mixins import level
    from reconciler.compile.suggest import did_you_mean

    fleet = _fleet(repo, rev)
    config = compile_node(fleet, node)
    console = Console()
    if var is not None:
        variable = config.variables.get(var)
        if variable is None:
            raise UsageError.because(f"variable {var!r} is not set for {node}"
                                     + did_you_mean(var, config.variables))
        _explain_variable(console, variable)
        return
    console.print(f"[bold]{config.name}[/]  class [cyan]{config.cls}[/] "
                  f"product {config.product} cluster {config.cluster} number {config.number}")
    console.print("class chain: " + " → ".join(config.class_chain))
    included = [f"{s.cls} (via {' > '.join(s.via)})" for c in config.class_chain
                for s in level(fleet, c).sources if s.via]
    if included:
        console.print("mixins: " + ", ".join(included))
    policy = config.policy
    spread = policy.interval if policy.splay is None else policy.splay
    console.print(f"policy: mode {policy.mode} (set by {policy.mode_from}; agent.toml's "
                  f"mode or --mode overrides it on the node), max-severity {policy.max_severity}, "
                  f"interval {policy.interval}s, splay {spread}s, "
                  f"local-edits {policy.local_edits}, prune {str(policy.prune).lower()}"
                  + (f", window {policy.window} (up to {policy.window_severity})"
                     if policy.window else ""))
    for check in config.health:
        console.print(f"health: {check.name}: {check.run} (timeout {check.timeout:g}s, "
                      f"{check.retries} attempt(s) {check.interval:g}s apart) at {check.origin}",
                      markup=False, highlight=False)
    rows = []
    for variable in config.variables.values():
        overrode = ", ".join(f"{_show(p.value, variable.secret)} ({p.layer})"
                             for p in reversed(variable.overrode))
        rows.append((variable.name, _show(variable.value, variable.secret),
                     variable.set_by.layer, str(variable.set_by.origin), overrode))
    print_rows(console, "variables", ("name", "value", "layer", "set at", "overrode"),
               rows, whole=(0, 3))
    print_rows(console, "actions", ("action", "severity", "from", "requires", "notify"),
               [(action.id, str(action.severity), _declared(action), " ".join(action.requires),
                 " ".join(f"{n.target}:{n.verb}" for n in action.notify))
                for action in config.actions], whole=(0,))


def _explain_variable(console: Any, variable: Variable) -> None:
    from rich.markup import escape

    console.print(f"[bold]{variable.name}[/] = {escape(_show(variable.value, variable.secret))}")
    console.print(escape(f"  set by {variable.set_by.layer} at {variable.set_by.origin}"))
    for step in reversed(variable.overrode):
        console.print(escape(f"  overrode {_show(step.value, variable.secret)} from {step.layer} "
                             f"at {step.origin}"))


def _declared(action: Action) -> str:
    """Where an action comes from: its class and line, the mixins it came through, the
    for-each item it was expanded for, and the names of its own variables."""
    text = f"{action.declared_in} ({action.origin})"
    if action.via:
        text += f"\nmixin via {' > '.join(action.via)}"
    if action.item:
        text += f"\nfor {action.item}"
    if action.vars:
        text += f"\nvars {', '.join(sorted(action.vars))}"
    return text


@click.command()
@repo_options
@click.argument("node")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write the files under this directory at their node paths.")
@published_option
@handles_errors
def render(repo: str, rev: str | None, node: str, out: str | None,
           facts_dir: str | None) -> None:
    """Render NODE's files, to stdout with headers or under --out DIR.

    Without the node's facts (--facts DIR), facts print as placeholders such as
    (facts.cpu.count), and a file whose template decides on one is not rendered.
    Nothing is decrypted: an encrypted variable renders as ENCRYPTED-<id>."""
    from reconciler.compile.compiler import compile_node
    from reconciler.errors import ConfigError
    from reconciler.render.renderer import Renderer, render_node

    fleet = _fleet(repo, rev)
    config = compile_node(fleet, node)
    files, problems = render_node(Renderer(fleet, facts=published(facts_dir)), config)
    if problems:
        raise ConfigError(problems)
    for item in files:
        secret = item.action.secret
        if item.unknown_facts:
            click.echo(f"{item.path}: {', '.join(item.unknown_facts)} not known for {node} "
                       + ("(no published facts): not rendered" if item.undecided else
                          "(no published facts): shown as placeholders"), err=True)
        if out is not None:
            if item.content is None:
                continue
            dest = Path(out) / item.path.lstrip("/")
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(item.content)
                os.chmod(dest, 0o600 if secret else 0o644)
            except OSError as exc:
                raise UsageError.because(
                    f"cannot write {exc.filename or dest}: {exc.strerror or exc}") from None
            click.echo(f"wrote {dest}")
            continue
        click.echo(f"==> {item.path} ({item.source}) <==")
        if item.undecided:
            click.echo(f"(not rendered: depends on {', '.join(item.unknown_facts)})")
        elif item.content is None:
            click.echo("(absent)")
        elif secret:  # no hash either: a short password could be guessed from it
            click.echo(f"(secret: {len(item.content)} bytes)")
        else:
            click.echo(item.content.decode("utf-8", "replace"), nl=False)
            if item.content and not item.content.endswith(b"\n"):
                click.echo()
