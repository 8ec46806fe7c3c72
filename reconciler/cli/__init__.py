"""The `reconciler` command line; each area of commands lives in its own module."""

from __future__ import annotations

import signal
from typing import Any

import click

from reconciler.cli import (
    agent,
    bootstrap,
    exitcodes,
    facts,
    fleet,
    node,
    repo,
    restore,
    review,
    rollout,
    runs,
    secret,
    signing,
)
from reconciler.errors import UsageError


class MisusedError(click.UsageError):
    """A usage mistake, reported by click as usual but with exit status 1."""

    exit_code = exitcodes.FOR_ERROR[UsageError]


class Commands(click.Group):
    """The command group; a usage mistake exits 1 ("refused before any change"), not
    click's 2, which for apply, audit and run means "changes made or drift found"."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except MisusedError:
            raise
        except click.UsageError as exc:
            raise MisusedError(exc.format_message(), exc.ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MisusedError:
            raise
        except click.UsageError as exc:
            raise MisusedError(exc.format_message(), exc.ctx) from None
        except KeyboardInterrupt:
            # click's own answer would be "Aborted!" and exit 1, which means "refused".
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(exitcodes.interrupted(signal.SIGINT)) from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reconciler")
def main() -> None:
    """reconciler: git-driven configuration for fleets of Linux servers."""


repo.register(main)
node.register(main)
runs.register(main)
restore.register(main)
review.register(main)
agent.register(main)
facts.register(main)
secret.register(main)
bootstrap.register(main)
fleet.register(main)
rollout.register(main)
signing.register(main)
