"""`reconciler bootstrap`: prepare a node to run reconciler for good."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import handles_errors
from reconciler.statedir import AGE_IDENTITY, AGENT_CONFIG, DEFAULT

SIGNING_KEY = "/etc/reconciler/signing-key"


def register(group: click.Group) -> None:
    group.add_command(bootstrap)


@click.command()
@click.option("--remote", required=True, help="URL of the config repo.")
@click.option("--node", required=True, help="This node's name in the fleet.")
@click.option("--branch", default="main", show_default=True, help="Branch to follow.")
@click.option("--mode", type=click.Choice(["audit", "change"]), default=None,
              help="Override the fleet's policy: only report (audit), or apply "
                   "(default: the fleet's <policy mode=...> decides).")
@click.option("--config", "config_path", default=AGENT_CONFIG, show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the agent settings.")
@click.option("--state-dir", default=str(DEFAULT), show_default=True,
              type=click.Path(file_okay=False), help="The node's state directory.")
@click.option("--identity", default=AGE_IDENTITY, show_default=True,
              type=click.Path(dir_okay=False), help="The node's private age key (kept if it "
                                                    "exists).")
@click.option("--signing-key", default=SIGNING_KEY, show_default=True,
              type=click.Path(dir_okay=False), help="The node's private SSH signing key "
                                                    "(kept if it exists).")
@click.option("--units-dest", default="/etc/systemd/system", show_default=True,
              type=click.Path(file_okay=False), help="Where to install the systemd units.")
@click.option("--no-units", is_flag=True, help="Do not install the systemd units.")
@click.option("--exec", "executable", default=None,
              help="The reconciler command the units run (default: this one).")
@click.option("--force", is_flag=True, help="Rewrite an existing agent.toml (keys are kept).")
@handles_errors
def bootstrap(remote: str, node: str, branch: str, mode: str | None, config_path: str,
              state_dir: str, identity: str, signing_key: str, units_dest: str,
              no_units: bool, executable: str | None, force: bool) -> None:
    """Prepare this node: agent.toml, its age identity and SSH signing key (private,
    0600, never printed), the systemd units; then print the public keys to add to the
    config repo."""
    from reconciler.agent import bootstrap as steps
    from reconciler.cli.agent import install_unit_files

    request = steps.Request(remote, node, branch, mode, Path(config_path).absolute(),
                            Path(state_dir).absolute(), Path(identity).absolute(),
                            Path(signing_key).absolute(), force)
    steps.check(request)
    steps.write_config(request)
    click.echo(f"wrote {request.config}")
    published = [steps.age_identity(request)]
    signing = steps.signing_key(request)
    if signing is not None:
        published.append(signing)
    for key, path in zip(published, (request.identity, request.signing_key), strict=False):
        click.echo(f"{'created' if key.created else 'kept the existing'} private key {path} "
                   f"(mode 0600)")
    if signing is None:
        click.echo("no ssh-keygen here: no signing key for fleet reports (install "
                   "openssh-client and run bootstrap again)")
    if not no_units:
        for target in install_unit_files(units_dest, executable, str(request.config)):
            click.echo(f"installed {target}")
    for line in steps.instructions(node, published):
        click.echo(line)
    click.echo("Once merged: systemctl daemon-reload && "
               "systemctl enable --now reconciler-agent.service")
