"""`reconciler facts`: what this machine is, as its templates see it (`facts.*`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.common import handles_errors

if TYPE_CHECKING:
    from reconciler.facts.model import Facts

def register(group: click.Group) -> None:
    group.add_command(facts)


def published_option(func: click.decorators.FC) -> click.decorators.FC:
    """--facts DIR, for the commands that render nodes away from them."""
    option = click.option(
        "--facts", "facts_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
        help="Facts the nodes published: DIR/<node>.json (reconciler facts --format json). "
             "Nodes without show placeholders where their templates use facts.")
    return option(func)


def published(facts_dir: str | None) -> dict[str, Facts] | None:
    """The facts of --facts DIR, by node name (None without the option)."""
    from reconciler.facts.published import load_directory

    return load_directory(facts_dir) if facts_dir is not None else None


def flatten(value: Any, prefix: str) -> list[tuple[str, str]]:
    """(template expression, value) pairs: `facts.cpu.count 2`, lists as `[0]`."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "{}")]
        return [pair for key, item in value.items() for pair in flatten(item, f"{prefix}.{key}")]
    if isinstance(value, list):
        if not value:
            return [(prefix, "[]")]
        return [pair for index, item in enumerate(value)
                for pair in flatten(item, f"{prefix}[{index}]")]
    if value is None:
        return [(prefix, "none")]
    return [(prefix, value if isinstance(value, str) else json.dumps(value))]


@click.command()
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="The managed filesystem: os-release is read under it.")
@click.option("--facts-root", default="/", show_default=True,
              type=click.Path(file_okay=False),
              help="Where the running system's proc/, sys/ and run/ are read.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="A line per fact, or the JSON document nodes publish.")
@handles_errors
def facts(root: str, facts_root: str, fmt: str) -> None:
    """Print this machine's facts, as templates see them (facts.cpu.count ...)."""
    from reconciler.facts.gather import gather
    from reconciler.facts.reader import DirectoryReader, SystemReader
    from reconciler.system.local import LocalSystem

    found = gather(DirectoryReader(facts_root),
                   SystemReader(LocalSystem(root, host_commands=False)))
    if fmt == "json":
        click.echo(found.model_dump_json(indent=2))
        return
    pairs = flatten(found.model_dump(mode="json"), "facts")
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        click.echo(f"{name.ljust(width)}  {value}")
