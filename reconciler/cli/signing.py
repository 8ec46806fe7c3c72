"""`reconciler verify-commit`: the node's signature check, run by the server's hook at the
time of the push (a key must be valid now, no signature may be dated after now)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from reconciler.cli.common import handles_errors


def register(group: click.Group) -> None:
    group.add_command(verify_commit)


@click.command("verify-commit")
@click.argument("commits", nargs=-1, required=True)
@click.option("--repo", default=".", show_default=True, help="The repository (bare or not).")
@click.option("--allowed-signers", default=None, help="SSH allowed-signers file.")
@click.option("--gpg-home", default=None, help="A dedicated OpenPGP keyring.")
@click.option("--signer", "signers", multiple=True,
              help="Who may sign (repeatable; default: any trusted key).")
@handles_errors
def verify_commit(commits: tuple[str, ...], repo: str, allowed_signers: str | None,
                  gpg_home: str | None, signers: tuple[str, ...]) -> None:
    """Verify each COMMIT as a node does with require-signed, seen now: a good signature
    by a trusted key (and one of the --signer when given) that is valid now, not dated
    in the future. Exits 1 naming the first commit that fails."""
    from reconciler.source.cache import SourceCache
    from reconciler.source.signatures import verify

    cache = SourceCache(repo, repo)
    now = datetime.now(UTC)
    for commit in commits:
        verify(cache, "head", commit, None, allowed_signers, gpg_home,
               seen={commit: now}, signers=signers)
    click.echo(f"{len(commits)} commit(s) verified")
