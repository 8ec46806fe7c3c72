"""The `reconciler` command line; each area of commands lives in its own module."""

from __future__ import annotations

import click

from reconciler.cli import agent, cycle, node, repo, review


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reconciler")
def main() -> None:
    """reconciler: git-driven configuration for fleets of Linux servers."""


repo.register(main)
node.register(main)
cycle.register(main)
review.register(main)
agent.register(main)
