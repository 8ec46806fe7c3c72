"""User, group and authorized-keys actions with the real shadow tools, `useradd --root`
and friends, against an account database planted under a temporary root.

The tools chroot into the root, which needs root privileges: CI runs as root; elsewhere
those tests are skipped with that reason.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from engine_support import action, applied_json, change, converge_root, desired, make_repo

from reconciler.record.report import EXIT_CHANGES, EXIT_HELD, EXIT_IN_SYNC
from reconciler.run import converge
from reconciler.statedir import StateDir
from reconciler.system.local import LocalSystem
from reconciler.system.wrappers import DelegatingSystem

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="useradd --root chroots into the root: needs root")

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvqcTXRD8rp/wEDnIliVxVaWEguacID83zg3nCtARQ alice@sa"


def _account_root(tmp_path: Path) -> Path:
    """A root with Debian's account files holding root and one group of the base system."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nadm:x:4:\nsudo:x:27:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nadm:*::\nsudo:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)
    (root / "home").mkdir()
    return root


def _entry(root: Path, database: str, name: str) -> list[str] | None:
    for line in (root / "etc" / database).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def _host_accounts() -> str:
    return hashlib.sha256(Path("/etc/passwd").read_bytes() + Path("/etc/group").read_bytes()) \
        .hexdigest()


OPS = """
  <group name="ops" gid="2000"/>
  <user name="ops" uid="2000" group="ops" groups="adm sudo" home="/home/ops"
        shell="/bin/bash" comment="Operations"/>
"""


@needs_root
def test_group_and_user_are_created_under_the_root_by_the_shadow_tools(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, OPS)
    root = _account_root(tmp_path)
    host = _host_accounts()

    report = converge_root(repo, root)

    assert report.exit_code == EXIT_CHANGES
    assert (change(report, "group:ops").op, change(report, "user:ops").op) == \
        ("groupadd", "useradd")
    assert _entry(root, "group", "ops") == ["ops", "x", "2000", ""]
    assert _entry(root, "passwd", "ops") == \
        ["ops", "x", "2000", "2000", "Operations", "/home/ops", "/bin/bash"]
    assert _entry(root, "group", "sudo") == ["sudo", "x", "27", "ops"]
    assert (root / "home/ops").stat().st_uid == 2000
    assert _host_accounts() == host, "nothing changed on the host"
    assert converge_root(repo, root).exit_code == EXIT_IN_SYNC


@needs_root
def test_a_shell_changed_by_hand_is_drift_edited_by_hand_and_reset(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, OPS)
    root = _account_root(tmp_path)
    converge_root(repo, root)
    passwd = root / "etc/passwd"
    passwd.write_text(passwd.read_text().replace("/home/ops:/bin/bash", "/home/ops:/bin/sh"))

    audit = converge_root(repo, root, "audit")

    found = change(audit, "user:ops")
    assert (found.summary, found.drift) == ("shell /bin/sh → /bin/bash", "edited-by-hand")
    converge_root(repo, root)
    assert _entry(root, "passwd", "ops") is not None
    assert _entry(root, "passwd", "ops")[6] == "/bin/bash"  # type: ignore[index]


@needs_root
def test_supplementary_groups_are_the_exact_set_declared(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, OPS)
    root = _account_root(tmp_path)
    converge_root(repo, root)
    repo.set_class(OPS.replace('groups="adm sudo"', 'groups="adm"'))

    report = converge_root(repo, root)

    assert change(report, "user:ops").summary == "groups adm,sudo → adm"
    assert _entry(root, "group", "sudo") == ["sudo", "x", "27", ""]
    assert _entry(root, "group", "adm") == ["adm", "x", "4", "ops"]


@needs_root
def test_a_gid_change_goes_through_groupmod(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<group name="deploy" gid="3000"/>')
    root = _account_root(tmp_path)
    converge_root(repo, root)
    repo.set_class('<group name="deploy" gid="3001"/>')

    report = converge_root(repo, root)

    assert (change(report, "group:deploy").op, change(report, "group:deploy").summary) == \
        ("groupmod", "gid 3000 → 3001")
    assert _entry(root, "group", "deploy") == ["deploy", "x", "3001", ""]


@needs_root
def test_a_user_declared_absent_is_removed_and_its_home_stays(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, OPS)
    root = _account_root(tmp_path)
    converge_root(repo, root)
    repo.set_class('<user name="ops" ensure="absent"/>')

    report = converge_root(repo, root)

    assert change(report, "user:ops").op == "userdel"
    assert _entry(root, "passwd", "ops") is None
    assert (root / "home/ops").is_dir()
    assert "user:ops" not in applied_json(root)["paths"]  # type: ignore[operator]


@needs_root
def test_an_account_no_longer_declared_is_an_orphan_removed_only_with_prune(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path, '<user name="temp" uid="2500"/>')
    root = _account_root(tmp_path)
    converge_root(repo, root)
    repo.set_class('<directory path="/srv"/>')

    kept = converge_root(repo, root)
    repo.set_fleet(defaults='max-severity="restart" prune="true"')
    pruned = converge_root(repo, root)

    assert [(o.op, o.status) for o in kept.orphans] == [("userdel", "held")]
    assert [(o.op, o.status) for o in pruned.orphans] == [("userdel", "applied")]
    assert _entry(root, "passwd", "temp") is None


@needs_root
def test_keys_of_a_user_created_in_the_same_run_belong_to_it(tmp_path: Path) -> None:
    body = OPS + f'<authorized-keys user="ops" exclusive="true"><key>{KEY}</key>' \
                 '</authorized-keys>'
    repo = make_repo(tmp_path, body)
    root = _account_root(tmp_path)

    report = converge_root(repo, root)

    assert action(report, "authorized-keys:ops").status == "applied"
    keys = root / "home/ops/.ssh/authorized_keys"
    assert keys.read_text().splitlines()[1:] == [KEY]
    assert (keys.stat().st_uid, keys.stat().st_mode & 0o777) == (2000, 0o600)
    assert ((root / "home/ops/.ssh").stat().st_uid,
            (root / "home/ops/.ssh").stat().st_mode & 0o777) == (2000, 0o700)


class Unprivileged(DelegatingSystem):
    """The node as a process without root privileges sees it."""

    @property
    def can_chown(self) -> bool:
        return False


def test_accounts_under_another_root_are_held_without_root_privileges(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, OPS)
    root = _account_root(tmp_path)
    before = (root / "etc/passwd").read_text()

    report = converge(desired(repo), Unprivileged(LocalSystem(str(root))),
                      StateDir.under(root), "change")

    assert report.exit_code == EXIT_HELD
    held = change(report, "user:ops")
    assert (held.op, held.status) == ("useradd", "held")
    assert held.detail == f"the shadow tools chroot into {root} (--root), which needs root " \
                          "privileges"
    assert (root / "etc/passwd").read_text() == before
