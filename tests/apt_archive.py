"""Test helper: a real signed APT archive on disk (a flat file:// repository), made with
dpkg-deb and gpg, for apt-get to read."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pkg_debs import build_deb


@dataclass(frozen=True)
class Archive:
    """A flat repository (`suites="./"`) and the armored public key that signs it."""

    path: Path
    public_key: str  # armored

    @property
    def uri(self) -> str:
        return f"file://{self.path}"


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["gpg", "--batch", "--quiet", "--homedir", str(home), *args],
                          input=stdin, capture_output=True, check=False, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"gpg {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout


def signing_key(work: Path, name: str = "Test Archive") -> Path:
    """A fresh GnuPG home holding one signing key without a passphrase.

    The home's name is short: gpg-agent's socket lives in it, and a socket path longer
    than 107 bytes (a deep pytest tmp_path under xdist) keeps the agent from starting."""
    home = work / f"g{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    home.mkdir(mode=0o700)
    _gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
         f"{name} <archive@example.invalid>", "ed25519", "sign", "never")
    return home


def build_archive(work: Path, packages: dict[str, str], gnupg: Path) -> Archive:
    """Build one .deb per name → version, write Packages and a signed InRelease; then
    stop the gpg-agent of `gnupg`, whose work is done."""
    path = work / "archive"
    path.mkdir(mode=0o755)
    debs = work / "debs"
    debs.mkdir()
    stanzas = []
    for name, version in packages.items():
        built = build_deb(debs, version, name=name)
        deb = path / built.name
        shutil.copyfile(built, deb)
        fields = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True,
                                text=True, check=True).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(f"{fields}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    listing = "\n".join(stanzas).encode()
    (path / "Packages").write_bytes(listing)
    release = ("Origin: test\nLabel: test\nSuite: stable\nCodename: stable\n"
               "Date: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n"
               f" {hashlib.sha256(listing).hexdigest()} {len(listing)} Packages\n")
    (path / "Release").write_text(release)
    try:
        (path / "InRelease").write_bytes(_gpg(gnupg, "--clearsign", "--output", "-",
                                              stdin=release.encode()))
        return Archive(path, _gpg(gnupg, "--armor", "--export").decode())
    finally:  # the agent gpg started for the key outlives the test otherwise
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"],
                       capture_output=True, check=False, timeout=60)
