"""Encrypted secrets on the node, from git with `reconciler run`: the database decrypts its
password with its own identity, a proxy cannot (and holds no trace of it anywhere), and
a node that cannot decrypt what it needs refuses the commit and keeps the last good one.
"""

from __future__ import annotations

import hashlib
import stat
import subprocess
from pathlib import Path

import pytest
from clirun import reconciler
from configrepo import Workspace
from secrets_support import CIPHERTEXT, DB, PASSWORD, PROXIES, RECIPIENTS, SecretRepo

from reconciler.secrets import age

SECRET_FILE = "etc/db/password.conf"


class Fleet:
    """The secret repo pushed to a bare origin, and nodes that run from it."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.repo = SecretRepo(ws)
        assert self.repo.cli("secret", "migrate").code == 0
        self.repo.ws.commit(self.repo.path, "encrypted")
        self.origin = ws.tmp / "origin.git"
        ws.git(ws.tmp, "clone", "--quiet", "--bare", str(self.repo.path), str(self.origin))

    def push(self, message: str) -> None:
        self.ws.commit(self.repo.path, message)
        self.ws.git(self.repo.path, "push", "--quiet", str(self.origin), "main")

    def node_dir(self, node: str) -> Path:
        return self.ws.tmp / "nodes" / node

    def run(self, node: str, identity: Path | None = None,
            *extra: str) -> subprocess.CompletedProcess[str]:
        """`reconciler run` for `node` from agent.toml, with its own identity by default."""
        base = self.node_dir(node)
        (base / "root").mkdir(parents=True, exist_ok=True)
        key = identity or self.repo.identity(node)
        config = base / "agent.toml"
        config.write_text(f'remote = "file://{self.origin}"\nnode = "{node}"\n'
                          f'root = "{base / "root"}"\nstate-dir = "{base / "state"}"\n'
                          f'identity = "{key}"\n')
        return reconciler(["run", "--config", config, "--format", "json", *extra],
                          env=self.ws.env)


@pytest.fixture
def fleet(ws: Workspace) -> Fleet:
    return Fleet(ws)


def everything_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def git_objects(git_dir: Path) -> bytes:
    """Every object of a git repository, decompressed: what grep on the files cannot see."""
    return subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch-all-objects",
                           "--batch"], capture_output=True, check=True).stdout


def test_the_database_decrypts_its_password_and_writes_it_0600(fleet: Fleet) -> None:
    done = fleet.run(DB[0])
    assert done.returncode == 2, done.stdout + done.stderr
    written = fleet.node_dir(DB[0]) / "root" / SECRET_FILE
    assert written.read_text() == f"password = {PASSWORD}\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert PASSWORD not in done.stdout + done.stderr


def test_a_proxy_cannot_decrypt_it_and_holds_no_trace_of_it(fleet: Fleet) -> None:
    done = fleet.run(PROXIES[0])
    assert done.returncode == 2, done.stdout + done.stderr
    state = fleet.node_dir(PROXIES[0]) / "state"
    cached = subprocess.run(["git", "--git-dir", str(state / "source.git"), "show",
                             f"HEAD:{CIPHERTEXT}"], capture_output=True, check=True).stdout
    with pytest.raises(age.AgeError, match="none of the identities is a recipient"):
        age.decrypt(cached, age.read_identities(str(fleet.repo.identity(PROXIES[0]))))
    plain_file = f"password = {PASSWORD}\n".encode()
    for haystack in (everything_under(state), git_objects(state / "source.git"),
                     git_objects(state / "history"), done.stdout.encode(),
                     everything_under(fleet.node_dir(PROXIES[0]) / "root")):
        assert PASSWORD.encode() not in haystack
        assert hashlib.sha256(plain_file).hexdigest().encode() not in haystack


def test_the_database_keeps_its_secret_out_of_its_state_and_history(fleet: Fleet) -> None:
    fleet.run(DB[0])
    (fleet.node_dir(DB[0]) / "root" / SECRET_FILE).write_text("password = hand-edited\n")
    again = fleet.run(DB[0])
    assert again.returncode == 2, again.stdout + again.stderr
    assert '"drift": "edited-by-hand"' in again.stdout
    state = fleet.node_dir(DB[0]) / "state"
    key = state / "secret-digest.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    plain_hash = hashlib.sha256(f"password = {PASSWORD}\n".encode()).hexdigest().encode()
    for haystack in (everything_under(state), git_objects(state / "history"),
                     git_objects(state / "source.git")):
        assert PASSWORD.encode() not in haystack
        assert b"hand-edited" not in haystack
        assert plain_hash not in haystack
    assert b"secret hmac-sha256:" in git_objects(state / "history")


def test_a_node_without_its_identity_refuses_the_commit_without_naming_the_value(
    fleet: Fleet, tmp_path: Path,
) -> None:
    done = fleet.run(DB[0], tmp_path / "missing.key")
    assert done.returncode == 1
    assert "cannot decrypt secret variable 'db_password' (secrets/db_password/product=shop.age)" \
        in done.stdout
    assert "missing.key" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert not (fleet.node_dir(DB[0]) / "root" / SECRET_FILE).exists()


def test_a_commit_the_node_cannot_decrypt_is_refused_and_the_last_good_kept(fleet: Fleet) -> None:
    assert fleet.run(DB[0]).returncode == 2
    # The repo re-keys db-01 to a key this node does not hold (a botched rotation).
    own = fleet.repo.identity(DB[0])
    kept = own.with_name("own.key")
    kept.write_bytes(own.read_bytes())
    kept.chmod(0o600)
    fleet.repo.add_node_key(DB[0])
    fleet.repo.ws.write(fleet.repo.path, {
        "templates/db/password.conf.j2": "password = {{ db_password }}\n# rotated\n"})
    assert fleet.repo.cli("secret", "rekey", "-i", str(fleet.repo.identity("alice"))).code == 0
    fleet.push("db-01 gets a new key")
    done = fleet.run(DB[0], kept)
    assert "refused" in done.stdout and "keeping last good" in done.stdout
    assert "cannot decrypt secret variable 'db_password'" in done.stdout
    assert "is not one of its recipients" in done.stdout
    written = fleet.node_dir(DB[0]) / "root" / SECRET_FILE
    assert written.read_text() == f"password = {PASSWORD}\n"  # the last good commit's file
    assert PASSWORD not in done.stdout + done.stderr


def test_a_value_encrypted_with_debian_age_reaches_the_node(fleet: Fleet) -> None:
    path = fleet.repo.path
    encrypted = subprocess.run(
        ["age", "--encrypt", "--armor", "--recipients-file", str(path / RECIPIENTS),
         "--output", str(path / CIPHERTEXT)], input=b"from-debian-age",
        capture_output=True, check=False)
    assert encrypted.returncode == 0, encrypted.stderr
    fleet.push("new password, encrypted with age")
    done = fleet.run(DB[1])
    assert done.returncode == 2, done.stdout + done.stderr
    assert (fleet.node_dir(DB[1]) / "root" / SECRET_FILE).read_text() == \
        "password = from-debian-age\n"
