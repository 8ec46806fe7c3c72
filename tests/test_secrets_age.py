"""The age format both ways: Debian's `age` reads what reconciler writes, and reconciler
reads what `age` writes (with keys from either side), and a header is read without a key."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
from configrepo import Workspace
from secrets_support import CIPHERTEXT, DB, PASSWORD, RECIPIENTS, SecretRepo

from reconciler.secrets import age


def run_age(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["age", *args], input=stdin, capture_output=True, check=False,
                          timeout=60)


def test_debian_age_decrypts_a_secret_reconciler_encrypted(ws: Workspace) -> None:
    repo = SecretRepo(ws)
    assert repo.cli("secret", "migrate").code == 0
    done = run_age("--decrypt", "--identity", str(repo.identity(DB[0])),
                   str(repo.path / CIPHERTEXT))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == PASSWORD


def test_reconciler_reads_a_secret_debian_age_encrypted_to_the_recipients_file(
    ws: Workspace,
) -> None:
    repo = SecretRepo(ws)
    assert repo.cli("secret", "migrate").code == 0
    done = run_age("--encrypt", "--armor", "--recipients-file", str(repo.path / RECIPIENTS),
                   "--output", str(repo.path / CIPHERTEXT), stdin=b"typed-into-age")
    assert done.returncode == 0, done.stderr
    assert repo.cli("validate").code == 0
    shown = repo.cli("secret", "show", "db_password", "--node", DB[1],
                     "--identity", str(repo.identity("alice")))
    assert shown.out == "typed-into-age\n", shown.err


def test_reconciler_uses_an_identity_made_by_age_keygen(tmp_path: Path) -> None:
    key = tmp_path / "admin.key"
    subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, check=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], capture_output=True, text=True,
                            check=True).stdout.strip()
    ciphertext = age.encrypt(b"for an age-keygen key", [age.check_recipient(public)])
    assert age.decrypt(ciphertext, age.read_identities(str(key))) == b"for an age-keygen key"


def test_a_generated_identity_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "age.key"
    pair = age.generate()
    age.write_identity(str(path), pair, "node x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"# public key: {pair.recipient}" in path.read_text()
    with pytest.raises(FileExistsError):
        age.write_identity(str(path), age.generate(), "node x")


def test_a_node_refuses_an_identity_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "age.key"
    age.write_identity(str(path), age.generate(), "node x")
    os.chmod(path, 0o644)
    with pytest.raises(age.AgeError, match=r"readable by others \(mode 0644\): chmod 600"):
        age.read_identities(str(path), private=True)
    assert age.read_identities(str(path))  # an operator's own key file is their business


def test_the_header_counts_x25519_recipients_without_a_key() -> None:
    keys = [age.generate().recipient for _ in range(3)]
    assert age.read_header(age.encrypt(b"x", keys)).x25519_count == 3


@pytest.mark.parametrize(("text", "why"), [
    (b"hello\n", "not an armored age file"),
    (b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!\n-----END AGE ENCRYPTED FILE-----\n",
     "not valid base64"),
])
def test_a_header_that_is_not_age_is_refused(text: bytes, why: str) -> None:
    with pytest.raises(age.AgeError, match=why):
        age.read_header(text)


def test_a_truncated_ciphertext_is_refused() -> None:
    whole = age.encrypt(b"x", [age.generate().recipient]).decode().splitlines()
    raw = base64.b64decode("".join(whole[1:-1]))
    cut = raw[: raw.index(b"\n---") + 1]
    armored = "\n".join([whole[0], base64.b64encode(cut).decode(), whole[-1]]).encode()
    with pytest.raises(age.AgeError, match=r"no MAC line|truncated"):
        age.read_header(armored)
