"""When a signature counts: key validity at the time the node first saw the commit.

git checks an SSH key's `valid-before`/`valid-after` against the commit's own date,
which the signer chooses, and gpg accepts a signature dated in the future. So a key
past its validity signs a commit dated back into it, and nothing stops it. Here a
signature that git found good is checked again against the time this node (or, in
the server's hook, the push) first saw the commit: an SSH signature with ssh-keygen
at that time, an OpenPGP one from gpg's own status lines. A signature (or, for SSH,
whose signatures carry no date, the commit) dated after that time is refused.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from reconciler.git import Git

# Clocks differ a little; a signature dated further ahead than this is refused.
MAX_SKEW = timedelta(minutes=5)
_SIGNATURE_HEADERS = (b"gpgsig ", b"gpgsig-sha256 ")


def ssh_refusal(git: Git, commit: str, signer: str, allowed_signers: str,
                seen: datetime) -> str | None:
    """Why the SSH signature of `commit` (good by git's check) does not count at `seen`,
    or None when it does."""
    dated = _committer_time(git, commit)
    if dated is not None and dated > seen + MAX_SKEW:
        return (f"dated in the future: committed at {_iso(dated)}, first seen at "
                f"{_iso(seen)}")
    raw = git.run("cat-file", "commit", commit)
    if not raw.ok:
        return f"cannot read the commit: {raw.tail()}"
    payload, signature = _split_signature(raw.stdout)
    if not signature:
        return "not signed"
    with tempfile.TemporaryDirectory(prefix="reconciler-sig-") as work:
        sig_path = os.path.join(work, "signature")
        with open(sig_path, "wb") as handle:
            handle.write(signature)
        done = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", allowed_signers, "-I", signer, "-n", "git",
             "-s", sig_path, f"-Overify-time={seen.astimezone(UTC):%Y%m%d%H%M%S}Z"],
            input=payload, capture_output=True, check=False, timeout=60,
        )  # fmt: skip
    if done.returncode == 0:
        return None
    said = " ".join(done.stderr.decode("utf-8", "replace").split())
    return (f"the SSH key of {signer} was not valid at {_iso(seen)}, when this commit was "
            f"first seen ({said or 'ssh-keygen refused it'})")


def openpgp_refusal(git: Git, commit: str, status: str, gpg_home: str | None,
                    seen: datetime) -> str | None:
    """Why the OpenPGP signature of `commit` does not count at `seen` (None when it does).
    `status` is git's letter: G (good now), or Y (good, but the key has expired since):
    a key that expired after the node first saw the commit still vouches for it."""
    env = {"GNUPGHOME": gpg_home} if gpg_home is not None else {}
    raw = git.run("verify-commit", "--raw", commit, env=env)
    signed_at, key_expired_at = _gpg_times(raw.stderr)
    if signed_at is None:
        return "no valid OpenPGP signature in gpg's answer"
    if signed_at > seen + MAX_SKEW:
        return (f"signature dated in the future: signed at {_iso(signed_at)}, first seen at "
                f"{_iso(seen)}")
    if status == "Y" and (key_expired_at is None or key_expired_at <= seen):
        when = f" at {_iso(key_expired_at)}" if key_expired_at is not None else ""
        return f"good signature, but the key had expired{when}, before this commit was seen"
    return None


def signer_refusal(signer: str, key: str, allowed: Sequence[str]) -> str | None:
    """Why `signer` (an SSH principal or an OpenPGP user id) is not one of the `allowed`
    signers of agent.toml; None when it is, or when no list is configured. An entry
    matches the principal, the user id, its e-mail address, or the key fingerprint."""
    if not allowed:
        return None
    email = signer[signer.rfind("<") + 1 : -1] if signer.endswith(">") and "<" in signer \
        else None
    names = {signer, key, *([email] if email else [])}
    if names & set(allowed):
        return None
    return f"signed by {signer or key}, who is not one of the signers agent.toml allows"


def _committer_time(git: Git, commit: str) -> datetime | None:
    out = git.ok("log", "-1", "--format=%ct", commit)
    try:
        return datetime.fromtimestamp(int((out or "").strip()), UTC)
    except ValueError:
        return None


def _split_signature(raw: bytes) -> tuple[bytes, bytes]:
    """The signed payload of a commit object (without its signature header) and the
    signature itself, as git hands them to ssh-keygen."""
    head, separator, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    signature: list[bytes] = []
    inside = False
    for line in head.split(b"\n"):
        header = next((h for h in _SIGNATURE_HEADERS if line.startswith(h)), None)
        if header is not None and not signature:
            inside = True
            signature.append(line[len(header):])
        elif inside and line.startswith(b" "):
            signature.append(line[1:])
        else:
            inside = False
            kept.append(line)
    payload = b"\n".join(kept) + separator + body
    return payload, (b"\n".join(signature) + b"\n") if signature else b""


def _gpg_times(status: str) -> tuple[datetime | None, datetime | None]:
    """(when the signature was made, when its key expired) from gpg's status lines."""
    signed_at = expired_at = None
    for line in status.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[:2] == ["[GNUPG:]", "VALIDSIG"]:
            signed_at = _timestamp(fields[4])
        elif len(fields) > 2 and fields[:2] == ["[GNUPG:]", "KEYEXPIRED"]:
            expired_at = _timestamp(fields[2])
    return signed_at, expired_at


def _timestamp(text: str) -> datetime | None:
    """gpg's time field: seconds since the epoch, or an ISO 8601 `YYYYMMDDTHHMMSS`."""
    try:
        if "T" in text:
            return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return datetime.fromtimestamp(int(text), UTC)
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
