"""A node's signing key: made by `reconciler fleet keygen`, registered in the config repo
at keys/nodes/<node>/signing.pub, and checked by `reconciler validate`."""

from __future__ import annotations

import stat
from pathlib import Path

from fleet_support import CLASSES, cli, fleet_xml
from gitutil_repo import Origin, ssh_key

from reconciler.agent import settings

NODE = "web-01.shop.c1.t"
FILES: dict[str, str | bytes | None] = {"fleet.xml": fleet_xml(web=1, cache=1), **CLASSES}


def test_keygen_makes_a_private_key_only_root_reads_and_says_where_to_register_it(
    tmp_path: Path,
) -> None:
    key = tmp_path / "etc" / "signing-key"
    done = cli("fleet", "keygen", "--key", str(key), "--node", NODE)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = key.with_name("signing-key.pub").read_text().strip()
    assert public.startswith("ssh-ed25519 ") and public.endswith(f" {NODE}")
    assert done.stdout.splitlines() == [
        f"created signing key {key} (public key {key}.pub)",
        public,
        "register it in the config repo (a merge request), so the reports server accepts "
        "this node's reports:",
        f"  mkdir -p keys/nodes/{NODE} && echo '{public}' > keys/nodes/{NODE}/signing.pub",
    ]


def test_keygen_keeps_an_existing_key_unless_forced(tmp_path: Path) -> None:
    key = tmp_path / "signing-key"
    cli("fleet", "keygen", "--key", str(key), "--node", NODE)
    first = key.read_bytes()
    again = cli("fleet", "keygen", "--key", str(key), "--node", NODE)
    assert again.stdout.startswith("kept the existing signing key")
    assert key.read_bytes() == first
    rotated = cli("fleet", "keygen", "--key", str(key), "--node", NODE, "--force")
    assert rotated.stdout.startswith("created signing key") and key.read_bytes() != first


def test_validate_accepts_registered_keys_of_fleet_nodes(tmp_path: Path) -> None:
    key = ssh_key(tmp_path, "node")
    origin = Origin(tmp_path / "config")
    origin.commit({**FILES, f"keys/nodes/{NODE}/signing.pub":
                   "# rotating: old and new\n" + key.with_suffix(".pub").read_text()})
    done = cli("validate", "--rev", "HEAD", cwd=origin.work)
    assert done.returncode == 0, done.stderr


def test_validate_refuses_bad_keys_and_keys_of_unknown_nodes_with_file_and_line(
    tmp_path: Path,
) -> None:
    key = ssh_key(tmp_path, "node").with_suffix(".pub").read_text()
    blob = key.split()[1]
    origin = Origin(tmp_path / "config")
    origin.commit({**FILES,
                   f"keys/nodes/{NODE}/signing.pub": f"{key}ssh-ed25519 not*base64\n",
                   "keys/nodes/cache-01.shop.c1.t/signing.pub": f"ssh-rsa {blob}\n",
                   "keys/nodes/web-07.shop.c1.t/signing.pub": key})
    done = cli("validate", "--rev", "HEAD", cwd=origin.work)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "keys/nodes/cache-01.shop.c1.t/signing.pub:1: bad public key: the key's content "
        "does not match its type 'ssh-rsa'",
        f"keys/nodes/{NODE}/signing.pub:2: bad public key: the key is not valid base64",
        "keys/nodes/web-07.shop.c1.t: keys of web-07.shop.c1.t, which is not a node of the "
        "fleet (remove keys/nodes/web-07.shop.c1.t/ when a node leaves)",
        "invalid: 3 distinct problem(s)",
    ]


def test_a_bootstrapped_node_publishes_with_the_key_bootstrap_made(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    done = cli("bootstrap", "--remote", "file:///srv/git/fleet.git", "--node", NODE,
               "--config", str(etc / "agent.toml"), "--state-dir", str(tmp_path / "state"),
               "--identity", str(etc / "age.key"), "--signing-key", str(etc / "signing-key"),
               "--units-dest", str(tmp_path / "units"))
    assert done.returncode == 0, done.stderr
    assert settings.load(etc / "agent.toml").signing_key == etc / "signing-key"
    kept = cli("fleet", "keygen", "--config", str(etc / "agent.toml"))
    assert kept.stdout.startswith(f"kept the existing signing key {etc / 'signing-key'}")
