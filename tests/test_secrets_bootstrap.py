"""`reconciler bootstrap`: a node's settings, private keys (0600, never printed) and units,
and the public keys it tells the operator to add to the config repo."""

from __future__ import annotations

import stat
from pathlib import Path

from clirun import reconciler
from configrepo import CliResult

from reconciler.agent import settings
from reconciler.secrets import age

NODE = "db-01.shop.c1.sa"


def bootstrap(tmp_path: Path, *extra: str) -> CliResult:
    etc = tmp_path / "etc"
    done = reconciler(
        ["bootstrap", "--remote", "file:///srv/git/fleet.git", "--node", NODE,
         "--config", str(etc / "agent.toml"), "--state-dir", str(tmp_path / "state"),
         "--identity", str(etc / "age.key"), "--signing-key", str(etc / "signing-key"),
         "--units-dest", str(tmp_path / "units"), *extra])
    return CliResult(done.returncode, done.stdout, done.stderr)


def test_bootstrap_prepares_the_node_and_prints_only_public_keys(tmp_path: Path) -> None:
    done = bootstrap(tmp_path)
    assert done.code == 0, done.err
    etc = tmp_path / "etc"
    config = settings.load(etc / "agent.toml")
    assert (config.node, config.remote, config.identity) == (
        NODE, "file:///srv/git/fleet.git", etc / "age.key")
    for private in ("age.key", "signing-key"):
        assert stat.S_IMODE((etc / private).stat().st_mode) == 0o600
    public = str(age.read_identities(str(etc / "age.key"))[0].to_public())
    assert f"keys/nodes/{NODE}/age.pub:\n    {public}" in done.out
    assert f"echo '{public}' > keys/nodes/{NODE}/age.pub" in done.out
    signing = (etc / "signing-key.pub").read_text().strip()
    assert f"keys/nodes/{NODE}/signing.pub:\n    {signing}" in done.out
    assert "AGE-SECRET-KEY" not in done.out + done.err
    assert "PRIVATE KEY" not in done.out + done.err
    units = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert units == ["reconciler-agent.service", "reconciler-run.service", "reconciler-run.timer"]
    assert f"--config {etc / 'agent.toml'}" in (tmp_path / "units/reconciler-agent.service") \
        .read_text()


def test_bootstrap_again_keeps_the_keys_and_the_settings(tmp_path: Path) -> None:
    first = bootstrap(tmp_path, "--no-units")
    key = (tmp_path / "etc/age.key").read_bytes()
    again = bootstrap(tmp_path, "--no-units")
    assert again.code == 1
    assert "is bootstrapped already (--force rewrites agent.toml; keys are always kept)" \
        in again.err
    forced = bootstrap(tmp_path, "--no-units", "--force", "--mode", "audit")
    assert forced.code == 0, forced.err
    assert (tmp_path / "etc/age.key").read_bytes() == key
    assert "kept the existing private key" in forced.out
    assert first.out.split("age.pub:")[1].split()[0] == forced.out.split("age.pub:")[1].split()[0]
    assert settings.load(tmp_path / "etc/agent.toml").mode == "audit"


def test_bootstrap_refuses_a_bad_node_name_and_writes_nothing(tmp_path: Path) -> None:
    done = bootstrap(tmp_path, "--node", "not a node")
    assert done.code == 1
    assert not (tmp_path / "etc").exists()
