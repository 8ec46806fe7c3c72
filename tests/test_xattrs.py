"""A file's extended attributes are kept when its content is replaced, as its mode and
owner are: POSIX ACLs, the SELinux label, user and trusted attributes — never the file
capabilities granted to the old content. Real files on the test's file system."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest
from configrepo import BASIC, Workspace
from node_root import with_users

from reconciler.system.interface import ValidationFailed
from reconciler.system.local import LocalSystem

NODE = "web-01.tickets.chi1.sa"
ACL = "system.posix_acl_access"
NOBODY = 65534


def acl(*entries: tuple[int, int, int | None]) -> bytes:
    """A POSIX ACL as the kernel stores it: version 2, then (tag, perm, id) entries."""
    undefined = 0xFFFFFFFF
    return struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, undefined if who is None else who)
        for tag, perm, who in entries)


# user::rw- user:nobody:rw- group::r-- mask::rw- other::r--
NOBODY_MAY_WRITE = acl((0x01, 6, None), (0x02, 6, NOBODY), (0x04, 4, None), (0x10, 6, None),
                       (0x20, 4, None))


def settable(path: Path, key: str, value: bytes) -> None:
    try:
        os.setxattr(path, key, value)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            pytest.skip(f"this file system or user cannot set {key}: {exc.strerror}")
        raise


@pytest.fixture
def live(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc/app.conf"
    path.write_text("old\n")
    path.chmod(0o664)
    return path


def replace(root: Path, data: bytes = b"new\n", mode: int = 0o664) -> None:
    LocalSystem(str(root)).write_atomic("/etc/app.conf", data, mode, None, None)


def test_user_attributes_are_kept_when_the_content_is_replaced(tmp_path: Path,
                                                               live: Path) -> None:
    settable(live, "user.origin", b"ticket-4711")
    settable(live, "user.empty", b"")

    replace(tmp_path)

    assert live.read_bytes() == b"new\n"
    assert os.getxattr(live, "user.origin") == b"ticket-4711"
    assert os.getxattr(live, "user.empty") == b""


def test_posix_acl_is_kept_when_the_content_is_replaced(tmp_path: Path, live: Path) -> None:
    settable(live, ACL, NOBODY_MAY_WRITE)

    replace(tmp_path)

    assert os.getxattr(live, ACL) == NOBODY_MAY_WRITE
    assert live.stat().st_mode & 0o777 == 0o664


def test_selinux_label_is_kept_when_the_content_is_replaced(tmp_path: Path, live: Path) -> None:
    settable(live, "security.selinux", b"system_u:object_r:etc_t:s0\0")

    replace(tmp_path)

    assert os.getxattr(live, "security.selinux") == b"system_u:object_r:etc_t:s0\0"


def test_file_capabilities_are_not_carried_to_new_content(tmp_path: Path, live: Path) -> None:
    # VFS_CAP_REVISION_2 with cap_net_raw permitted: granted to the old bytes only.
    settable(live, "security.capability", struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0))
    settable(live, "user.kept", b"yes")

    replace(tmp_path)

    assert "security.capability" not in os.listxattr(live)
    assert os.getxattr(live, "user.kept") == b"yes"


def test_a_failed_replace_leaves_the_attributes_of_the_live_file(tmp_path: Path,
                                                                 live: Path) -> None:
    settable(live, "user.origin", b"ticket-4711")
    with_users(tmp_path)

    with pytest.raises(ValidationFailed, match=r"validation of /etc/app\.conf failed"):
        LocalSystem(str(tmp_path)).write_atomic("/etc/app.conf", b"new\n", 0o664, None, None,
                                                validate="false %s")

    assert live.read_bytes() == b"old\n" and os.getxattr(live, "user.origin") == b"ticket-4711"
    assert sorted(p.name for p in live.parent.iterdir()) == ["app.conf", "passwd"]


def test_apply_healing_a_hand_edit_keeps_the_acl_and_user_attributes(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    root = ws.tmp / "root"
    ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root)
    motd = root / "etc/motd"
    motd.write_text("edited by hand\n")
    settable(motd, "user.origin", b"ticket-4711")
    settable(motd, ACL, NOBODY_MAY_WRITE)

    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root)

    assert motd.read_text() == f"hello from {NODE}\n", done
    assert os.getxattr(motd, "user.origin") == b"ticket-4711"
    assert os.getxattr(motd, ACL) == NOBODY_MAY_WRITE
