"""The `reconciler` command line; each area of commands lives in its own module."""

from __future__ import annotations

import gc
import importlib
import signal
from typing import Any

import click

from reconciler.cli import exitcodes
from reconciler.errors import UsageError

# Each command by the module of reconciler.cli that defines it (and registers it with its
# neighbours): a command loads its own module alone, not the other eleven.
# tests/test_cli_imports.py checks this table against the modules.
COMMANDS = {
    "agent": "agent", "check": "agent", "install-units": "agent",
    "apply": "node", "audit": "node",
    "bootstrap": "bootstrap",
    "explain": "repo", "init": "repo", "nodes": "repo", "render": "repo", "validate": "repo",
    "facts": "facts",
    "fleet": "fleet",
    "hooks": "review", "plan": "review",
    "log": "runs", "rollback": "runs", "run": "runs", "status": "runs",
    "restore": "restore",
    "rollout": "rollout",
    "secret": "secret",
    "verify-commit": "signing",
}


class MisusedError(click.UsageError):
    """A usage mistake, reported by click as usual but with exit status 1."""

    exit_code = exitcodes.FOR_ERROR[UsageError]


class Commands(click.Group):
    """The command group; a usage mistake exits 1 ("refused before any change"), not
    click's 2, which for apply, audit and run means "changes made or drift found".
    Commands are loaded when named (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"reconciler.cli.{COMMANDS[cmd_name]}").register(self)
        return super().get_command(ctx, cmd_name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The program itself (entry.py; a test's CliRunner calls `main` instead): the
        process ends after the command, and the interpreter's last collections would only
        go through what it built and imported, all alive to the end (a sixth of a short
        command's CPU). Frozen, they are skipped."""
        try:
            return super().__call__(*args, **kwargs)
        finally:
            gc.freeze()

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

