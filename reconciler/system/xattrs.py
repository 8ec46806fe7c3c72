"""Extended attributes kept when a file's content is replaced, like its mode and owner:
POSIX ACLs (`system.posix_acl_*`), the SELinux label (`security.selinux`), `user.*` and
`trusted.*` attributes move from the old file to the new one before the rename.

`security.capability` is not carried over: it was granted to the old content, and new
content must not inherit it. An attribute the file system or the running user cannot
set on the new file (no privilege, no support) is left behind; any other error fails
the write, which then leaves the live file untouched.
"""

from __future__ import annotations

import errno
import os

from reconciler.system.walk import READ_FLAGS

NOT_CARRIED = frozenset({"security.capability"})
_UNSETTABLE = frozenset({errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP})


def carry_over(dir_fd: int, name: str, new_fd: int) -> None:
    """Copy the extended attributes of regular file `name` (in `dir_fd`, never followed)
    onto the open file `new_fd`."""
    old_fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    try:
        try:
            keys = os.listxattr(old_fd)
        except OSError as error:
            if error.errno in _UNSETTABLE:
                return
            raise
        for key in keys:
            if key in NOT_CARRIED:
                continue
            value = os.getxattr(old_fd, key)
            try:
                os.setxattr(new_fd, key, value)
            except OSError as error:
                if error.errno not in _UNSETTABLE:
                    raise
    finally:
        os.close(old_fd)
