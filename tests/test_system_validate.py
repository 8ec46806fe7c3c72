"""LocalSystem.write_atomic's `validate=` command: it sees the candidate under its real name
beside the target, a rejection leaves the live file as it was, a secret's output is
withheld."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from node_root import with_users
from system_support import leftovers

from reconciler.system.interface import ValidationFailed
from reconciler.system.local import LocalSystem


def test_rejecting_validate_leaves_live_file_identical_and_no_temp_file(
    system: LocalSystem, root: Path
) -> None:
    with_users(root)
    target = root / "etc" / "app.conf"
    target.write_bytes(b"good\n")
    with pytest.raises(ValidationFailed, match="syntax error near line 1") as caught:
        system.write_atomic(
            "/etc/app.conf",
            b"bad\n",
            0o644,
            None,
            None,
            validate="sh -c 'echo syntax error near line 1 >&2; exit 1' -- %s",
        )
    assert caught.value.output == "syntax error near line 1"
    assert target.read_bytes() == b"good\n"
    assert leftovers(root / "etc") == []


def test_accepting_validate_sees_the_candidate_under_its_real_name_beside_the_target(
    system: LocalSystem, root: Path
) -> None:
    with_users(root)
    (root / "etc" / "include.conf").write_bytes(b"included\n")
    system.write_atomic(
        "/etc/app.conf",
        b"new\n",
        0o644,
        None,
        None,
        validate='sh -c \'test -f include.conf && grep -q new "$1" && echo "$1" > seen\' -- %s',
    )
    candidate = Path((root / "etc" / "seen").read_text().strip())
    assert candidate.name == "app.conf"
    assert candidate.parent.name.startswith(".reconciler-check-")
    assert candidate.parent.parent == Path("/etc"), "a node path: the check ran in the root"
    assert (root / "etc" / "app.conf").read_bytes() == b"new\n"
    assert leftovers(root / "etc") == []


def test_validate_output_of_secret_file_is_withheld(system: LocalSystem, root: Path) -> None:
    with_users(root)
    with pytest.raises(ValidationFailed, match="output withheld") as caught:
        system.write_atomic(
            "/etc/token",
            b"hunter2\n",
            0o600,
            None,
            None,
            validate="sh -c 'cat \"$1\"; exit 1' -- %s",
            secret=True,
        )
    assert "hunter2" not in str(caught.value)
    assert caught.value.output == ""
    assert not (root / "etc" / "token").exists()


def test_validate_without_placeholder_is_refused_before_writing(
    system: LocalSystem, root: Path
) -> None:
    with pytest.raises(ValidationFailed, match="no %s"):
        system.write_atomic("/etc/app.conf", b"x", 0o644, None, None, validate="true")
    assert os.listdir(root / "etc") == []
