"""A signature counts when its key was valid at the time the node first saw the commit,
not at the date the signer wrote in it: real SSH keys with validity windows, real gpg
signatures made with a faked clock, real runs, and the server's pre-receive hook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cycle_support import BASE_FILES, Node
from gitutil_repo import (
    Origin,
    allowed_signers,
    gpg,
    gpg_home,
    gpg_stop_agent,
    ssh_key,
    ssh_signing,
)
from review_support import FleetRepo, run

from reconciler.record.report import EXIT_CHANGES, EXIT_REFUSED
from reconciler.source.cache import SourceCache
from reconciler.source.signatures import SignatureRefused, verify
from reconciler.statedir import StateDir

pytestmark = pytest.mark.usefixtures("isolated_git")

BACKDATED = {"GIT_COMMITTER_DATE": "2019-06-01T00:00:00Z",
             "GIT_AUTHOR_DATE": "2019-06-01T00:00:00Z"}
SYSTEM_PATH = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
FUTURE = {"GIT_COMMITTER_DATE": "2031-01-01T00:00:00Z",
          "GIT_AUTHOR_DATE": "2031-01-01T00:00:00Z"}


def signers_file(path: Path, key: Path, options: str = "") -> Path:
    """alice@example.org's key, with allowed-signers `options` (valid-before=...)."""
    allowed_signers(path, {"alice@example.org": key})
    if options:
        path.write_text(path.read_text().replace('namespaces="git"', f'namespaces="git",{options}'))
    return path


@pytest.fixture
def alice(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir()
    return ssh_key(keys, "alice")


def signed_node(tmp_path: Path, alice: Path, options: str, **settings: Any) -> Node:
    node = Node(tmp_path)
    signers = signers_file(tmp_path / "allowed_signers", alice, options)
    signing: dict[str, Any] = {"require-signed": "head", "allowed-signers": str(signers),
                               **settings}
    node.write_config(**signing)
    return node


def test_an_expired_ssh_key_signing_a_backdated_commit_is_refused(
    tmp_path: Path, alice: Path
) -> None:
    node = signed_node(tmp_path, alice, 'valid-before="20200101"')
    node.origin.commit(BASE_FILES, "backdated into the key's window",
                       signing=ssh_signing(alice), env=BACKDATED)
    done = node.cli("run", "--format", "json")
    assert done.code == EXIT_REFUSED, done.out
    problems = " ".join(json.loads(done.out)["problems"])
    assert "the SSH key of alice@example.org was not valid at" in problems
    assert "key has expired" in problems
    assert not (node.root / "etc/x").exists()


def test_a_commit_first_seen_while_the_key_was_valid_still_counts_after_it_expires(
    tmp_path: Path, alice: Path
) -> None:
    origin = Origin(tmp_path / "remote")
    tip = origin.commit({"fleet.xml": "<fleet/>\n"}, "signed in time",
                        signing=ssh_signing(alice), env=BACKDATED)
    cache = SourceCache(StateDir(tmp_path / "state").source_cache, origin.url, timeout=10)
    cache.fetch()
    signers = signers_file(tmp_path / "allowed_signers", alice, 'valid-before="20200101"')
    seen_in_time = {tip: datetime(2019, 6, 2, tzinfo=UTC)}
    info = verify(cache, "head", tip, None, str(signers), None, seen=seen_in_time)
    assert info is not None and info.signer == "alice@example.org"
    with pytest.raises(SignatureRefused, match="was not valid at"):
        verify(cache, "head", tip, None, str(signers), None, seen={tip: datetime.now(UTC)})


def test_a_commit_dated_in_the_future_is_refused(tmp_path: Path, alice: Path) -> None:
    node = signed_node(tmp_path, alice, "")
    node.origin.commit(BASE_FILES, "from the future", signing=ssh_signing(alice), env=FUTURE)
    done = node.cli("run", "--format", "json")
    assert done.code == EXIT_REFUSED
    assert "dated in the future" in " ".join(json.loads(done.out)["problems"])


def test_the_first_seen_time_is_kept_and_the_good_commit_keeps_working(
    tmp_path: Path, alice: Path
) -> None:
    node = signed_node(tmp_path, alice, 'valid-after="20200101"')
    tip = node.push_base(signing=ssh_signing(alice))
    assert node.cli("run").code == EXIT_CHANGES
    first = json.loads((node.state / "source-state.json").read_text())["first_seen"][tip]
    assert node.cli("run").code == 0
    assert json.loads((node.state / "source-state.json").read_text())["first_seen"][tip] == first


def test_a_signer_not_named_in_agent_toml_is_refused(tmp_path: Path, alice: Path) -> None:
    node = signed_node(tmp_path, alice, "", signers=["bob@example.org"])
    node.push_base(signing=ssh_signing(alice))
    done = node.cli("run", "--format", "json")
    assert done.code == EXIT_REFUSED
    assert "signed by alice@example.org, who is not one of the signers agent.toml allows" \
        in " ".join(json.loads(done.out)["problems"])
    signing: dict[str, Any] = {"require-signed": "head", "allowed-signers":
                               str(tmp_path / "allowed_signers"), "signers": ["alice@example.org"]}
    node.write_config(**signing)
    assert node.cli("run").code == EXIT_CHANGES


@pytest.fixture
def faked_gpg(tmp_path: Path) -> Iterator[tuple[Path, str, Path]]:
    """An OpenPGP key made in 2020 that expired in 2021, and a gpg that signs at a
    faked time (FAKED_TIME in the environment): (home, fingerprint, program)."""
    home = gpg_home(tmp_path / "gpg-signer")
    gpg(home, "--faked-system-time", "20200101T000000", "--passphrase", "",
        "--quick-gen-key", "Bob <bob@example.org>", "ed25519", "sign", "2y")
    listing = gpg(home, "--with-colons", "--list-secret-keys").decode()
    fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                       if line.startswith("fpr:"))
    program = tmp_path / "faked-gpg"
    program.write_text('#!/bin/sh\nexec gpg --faked-system-time "$FAKED_TIME" "$@"\n')
    program.chmod(0o755)
    yield home, fingerprint, program
    gpg_stop_agent(home)


def gpg_commit(origin: Origin, faked: tuple[Path, str, Path], when: str) -> str:
    home, fingerprint, program = faked
    return origin.commit({"fleet.xml": f"<fleet/><!-- {when} -->\n"}, f"signed at {when}",
                         signing=["-c", f"gpg.program={program}", "-c",
                                  f"user.signingkey={fingerprint}"],
                         env={"GNUPGHOME": str(home), "FAKED_TIME": when})


def test_an_openpgp_signature_dated_in_the_future_is_refused(
    tmp_path: Path, faked_gpg: tuple[Path, str, Path]
) -> None:
    home = gpg_home(tmp_path / "gpg-current")
    gpg(home, "--passphrase", "", "--quick-gen-key", "Carol <carol@example.org>", "ed25519",
        "sign", "never")
    fingerprint = next(line.split(":")[9] for line in gpg(
        home, "--with-colons", "--list-secret-keys").decode().splitlines()
        if line.startswith("fpr:"))
    origin = Origin(tmp_path / "remote")
    tip = gpg_commit(origin, (home, fingerprint, faked_gpg[2]), "20310101T000000")
    cache = SourceCache(StateDir(tmp_path / "state").source_cache, origin.url, timeout=10)
    cache.fetch()
    with pytest.raises(SignatureRefused, match="signature dated in the future"):
        verify(cache, "head", tip, None, None, str(home), seen={tip: datetime.now(UTC)})
    gpg_stop_agent(home)


def test_an_openpgp_key_that_expired_after_the_commit_was_seen_still_vouches_for_it(
    tmp_path: Path, faked_gpg: tuple[Path, str, Path]
) -> None:
    origin = Origin(tmp_path / "remote")
    tip = gpg_commit(origin, faked_gpg, "20200601T000000")
    cache = SourceCache(StateDir(tmp_path / "state").source_cache, origin.url, timeout=10)
    cache.fetch()
    home = str(faked_gpg[0])
    info = verify(cache, "head", tip, None, None, home,
                  seen={tip: datetime(2020, 6, 2, tzinfo=UTC)})
    assert info is not None and info.status == "Y"
    with pytest.raises(SignatureRefused, match="the key had expired"):
        verify(cache, "head", tip, None, None, home, seen={tip: datetime.now(UTC)})


def test_the_server_hook_judges_an_ssh_key_at_the_time_of_the_push(
    tmp_path: Path, alice: Path
) -> None:
    signers = signers_file(tmp_path / "allowed_signers", alice, 'valid-before="20200101"')
    repo = FleetRepo(tmp_path)
    bare = tmp_path / "server.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], tmp_path, repo.home)
    for key, value in (("reconciler.requireSigned", "head"),
                       ("gpg.ssh.allowedSignersFile", str(signers))):
        run(["git", "-C", str(bare), "config", key, value], tmp_path, repo.home)
    assert repo.reconciler("hooks", "install", "--server", str(bare)).returncode == 0
    repo.git("remote", "add", "origin", str(bare))
    repo.git("-c", "gpg.format=ssh", "-c", f"user.signingKey={alice}", "commit", "-q",
             "--amend", "-S", "--no-edit", env=BACKDATED)
    done = repo.git("push", "origin", "main", check=False, env=SYSTEM_PATH)
    assert done.returncode != 0
    assert "signature refused at the time of this push" in done.stderr
    assert "was not valid at" in done.stderr
