"""`reconciler secret`: encrypted variables in the config repo (set, show, rekey, migrate).

A value is read from a terminal prompt or from stdin, never from the command line
(argv is visible to every user of the machine and lands in shell history).
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import handles_errors, repo_options
from reconciler.errors import UsageError

if TYPE_CHECKING:
    from pyrage import x25519


def register(group: click.Group) -> None:
    group.add_command(secret)


@click.group()
def secret() -> None:
    """Secret variables, encrypted with age to exactly the nodes that use them."""


def _identities(path: str) -> list[x25519.Identity]:
    from reconciler.secrets.age import AgeError, read_identities

    try:
        return read_identities(path)
    except AgeError as exc:
        raise UsageError.because(str(exc)) from None


def _read_value(name: str) -> bytes:
    """The value from a terminal prompt (typed twice, not echoed), or all of stdin less
    one trailing newline."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"value of {name}: ")
        if first != getpass.getpass(f"value of {name} (again): "):
            raise UsageError.because("the two values differ: nothing changed")
        value = first.encode()
    else:
        value = sys.stdin.buffer.read()
        value = value[:-2] if value.endswith(b"\r\n") else value.removesuffix(b"\n")
    if not value:
        raise UsageError.because("empty value: nothing changed")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError.because("the value is not UTF-8 text: nothing changed") from None
    return value


def _report(lines: list[str], written: list[str]) -> None:
    for line in lines:
        click.echo(line)
    if written:
        click.echo("wrote " + ", ".join(written) + "; review, commit and open a merge request")


@secret.command("set")
@click.argument("name")
@click.option("--class", "cls", default=None, help="The <vars> layer of this class.")
@click.option("--product", default=None, help="… of this product.")
@click.option("--cluster", default=None, help="… of this cluster.")
@click.option("--node", default=None, help="The <node> layer of this node (alone).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The config repo (its working tree is changed).")
@handles_errors
def set_cmd(name: str, cls: str | None, product: str | None, cluster: str | None,
            node: str | None, repo: str) -> None:
    """Encrypt a new value of NAME at one layer (default: the fleet defaults) to the
    nodes that use it there and to the admins. The value comes from a prompt or stdin."""
    from reconciler.secrets.workflow import set_secret
    from reconciler.secrets.xmledit import Target

    if node is not None and (cls or product or cluster):
        raise UsageError.because("--node stands alone (a <node> layer has no selector)")
    value = _read_value(name)
    done = set_secret(repo, name, Target(cls, product, cluster, node), value)
    _report(done.lines, done.written)


@secret.command("show")
@click.argument("name")
@click.option("--node", required=True, help="Whose value: the one this node resolves.")
@click.option("--identity", "-i", required=True, type=click.Path(dir_okay=False),
              help="Your age identity file (an admin's).")
@repo_options
@handles_errors
def show(name: str, node: str, identity: str, repo: str, rev: str | None) -> None:
    """Decrypt and print the value of NAME that NODE uses."""
    from reconciler.compile.compiler import compile_node, load_fleet
    from reconciler.secrets.age import AgeError, decrypt
    from reconciler.secrets.sealed import Sealed
    from reconciler.source.snapshot import open_snapshot

    config = compile_node(load_fleet(open_snapshot(repo, rev)), node)
    variable = config.variables.get(name)
    if variable is None:
        raise UsageError.because(f"variable {name!r} is not set for {node}")
    if not isinstance(variable.value, Sealed):
        raise UsageError.because(f"{name!r} is not encrypted for {node} (set at "
                                 f"{variable.set_by.origin}): `reconciler explain`")
    try:
        plain = decrypt(variable.value.ciphertext, _identities(identity))
    except AgeError as exc:
        raise UsageError.because(f"{variable.value.path}: {exc}") from None
    click.echo(plain.decode("utf-8", "replace"))


@secret.command()
@click.option("--identity", "-i", default=None, type=click.Path(dir_okay=False),
              help="Your age identity file (an admin's), to decrypt what must be re-encrypted.")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The config repo (its working tree is changed).")
@handles_errors
def rekey(identity: str | None, repo: str) -> None:
    """Re-encrypt every secret whose recipients changed (nodes added or removed, a key
    rotated, an admin added or removed), and say what changed."""
    from reconciler.secrets.workflow import rekey as run_rekey

    done = run_rekey(repo, _identities(identity) if identity else [])
    _report(done.lines, done.written)


@secret.command()
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The config repo (its working tree is changed).")
@handles_errors
def migrate(repo: str) -> None:
    """Encrypt every plain-text secret value (`<var secret="true">`) where it is declared."""
    from reconciler.secrets.workflow import migrate as run_migrate

    done = run_migrate(repo)
    _report(done.lines, done.written)
