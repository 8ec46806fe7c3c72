"""Signature policy: a commit is used only when git's own verification vouches for it.

`head` checks the tip; `range` checks every commit since the last applied one and the
tip. SSH signatures are checked against the allowed-signers file, OpenPGP signatures
against a dedicated keyring (`gpg-home`) or the default one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from reconciler.errors import Problem, Refused
from reconciler.source import sigtime
from reconciler.source.cache import SourceCache, failure

SignaturePolicy = Literal["none", "head", "range"]


class SignatureRefused(Refused):
    """A commit failed the signature policy; the run is refused, last good is kept."""


@dataclass(frozen=True)
class SignatureInfo:
    """Who signed a commit that verified: key fingerprint and signer identity."""

    commit: str
    kind: Literal["ssh", "openpgp"]
    key: str  # OpenPGP fingerprint, or SSH "SHA256:..." key fingerprint
    signer: str  # OpenPGP user id, or the SSH principal from the allowed-signers file
    status: str  # git's %G? letter: G, or U for an OpenPGP key of a dedicated keyring

    def __str__(self) -> str:
        return f"{self.signer} {self.key}" if self.signer else self.key


def verify(
    cache: SourceCache,
    policy: SignaturePolicy,
    commit: str,
    last_applied: str | None,
    allowed_signers: str | os.PathLike[str] | None,
    gpg_home: str | os.PathLike[str] | None,
    *,
    seen: Mapping[str, datetime] | None = None,
    signers: Sequence[str] = (),
) -> SignatureInfo | None:
    """Check signatures with git's own verification and return who signed the tip.

    `head` checks the tip; `range` checks every commit in `last_applied..commit`
    and the tip (just the tip on a first run). Status `G` passes. `U` (good
    signature, validity unknown) passes only for an OpenPGP key when `gpg_home`
    names a dedicated keyring: putting a key there is the trust decision. For SSH,
    `U` means the key is not in the allowed-signers file and fails. With policy
    `none` nothing is refused and the tip's signer is returned when it verifies.

    Then the time (sigtime.py): the key must have been valid when the commit was
    first seen (`seen[sha]`, else `seen[commit]`, else now), and no signature may be
    dated after that. With `signers`, the signer must be one of them.
    """
    if policy == "range" and last_applied is not None:
        if cache.resolve(last_applied) is None:
            raise SignatureRefused([Problem(
                f"cannot verify the range {last_applied}..{commit}: "
                f"{last_applied} is no longer in the repository", cache.where)])
        results = _signatures(cache, f"{last_applied}..{commit}", allowed_signers, gpg_home)
        if not any(sha == commit for sha, *_ in results):
            results += _signatures(cache, commit, allowed_signers, gpg_home, single=True)
    else:
        results = _signatures(cache, commit, allowed_signers, gpg_home, single=True)
    tip: SignatureInfo | None = None
    seen = seen or {}
    default = seen.get(commit) or datetime.now(UTC)
    for sha, status, key, signer in results:
        kind: Literal["ssh", "openpgp"] = "ssh" if key.startswith("SHA256:") else "openpgp"
        reason = _refusal(status, kind, key, gpg_home is not None, allowed_signers is not None)
        if policy != "none" and (reason is None or (kind, status) == ("openpgp", "Y")):
            at = seen.get(sha) or default
            if kind == "ssh":
                assert allowed_signers is not None  # G needs the allowed-signers file
                reason = sigtime.ssh_refusal(cache.git, sha, signer, str(allowed_signers), at)
            else:
                reason = sigtime.openpgp_refusal(
                    cache.git, sha, status, str(gpg_home) if gpg_home is not None else None, at)
            reason = reason or sigtime.signer_refusal(signer, key, signers)
        if reason is None:
            if sha == commit:
                tip = SignatureInfo(sha, kind, key, signer, status)
        elif policy != "none":
            raise SignatureRefused([Problem(f"commit {sha}: {reason}", cache.where)])
    return tip


def _signatures(
    cache: SourceCache,
    revs: str,
    allowed_signers: str | os.PathLike[str] | None,
    gpg_home: str | os.PathLike[str] | None,
    single: bool = False,
) -> list[tuple[str, str, str, str]]:
    """(sha, %G?, key, signer) for each commit; %GF (full fingerprint) when git has it.
    The same log reads each commit's subject, which the cache keeps for the report: as
    its author wrote it, a subject ends each record, and a record ends with a word drawn
    for this call, which no subject can forge."""
    env = {"GNUPGHOME": str(gpg_home)} if gpg_home is not None else {}
    signers = str(allowed_signers) if allowed_signers is not None else os.devnull
    end = secrets.token_hex(8)
    done = cache.git.run(
        "-c", f"gpg.ssh.allowedSignersFile={signers}",
        "log", *(["-1"] if single else []),
        f"--format=%H%x1f%G?%x1f%GK%x1f%GF%x1f%GS%x1f%s%x1f{end}%x1e", revs, "--",
        env=env,
    )  # fmt: skip
    if not done.ok:
        raise SignatureRefused(
            [Problem(f"cannot read signatures of {revs}: {failure(done)}", cache.where)]
        )
    results = []
    for record in done.out.split(f"\x1f{end}\x1e"):
        fields = record.strip("\n").split("\x1f", 5)
        if len(fields) == 6:
            sha, letter, key_id, fingerprint, signer, subject = fields
            results.append((sha, letter, fingerprint or key_id, signer))
            cache.learn_subject(sha, subject)
    return results


_REFUSALS = {
    "N": "not signed",
    "B": "bad signature",
    "X": "good signature, but the signature has expired",
    "Y": "good signature, but the key has expired",
    "R": "good signature, but the key has been revoked",
    "E": "signature cannot be checked (key {key} is not in the keyring)",
}


def _refusal(
    status: str, kind: str, key: str, dedicated_keyring: bool, has_signers_file: bool
) -> str | None:
    """Why a %G? status fails the policy, or None when it passes (see `verify`)."""
    if status == "G":
        return None
    if status == "U":
        if kind == "openpgp":
            if dedicated_keyring:
                return None
            return f"key {key} is in the default keyring but not trusted (validity unknown)"
        if not has_signers_file:
            return f"signed with SSH key {key}, but no allowed-signers file is configured"
        return f"SSH key {key} is not in the allowed-signers file"
    return _REFUSALS.get(status, f"unknown signature status {status!r}").format(key=key)

