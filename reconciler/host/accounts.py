"""Local accounts: read /etc/passwd and /etc/group through the System, change them with
the shadow tools (useradd, usermod, userdel, groupadd, groupmod, groupdel).

Under another root the tools get their own `--root DIR`: they chroot into it, so they
read that root's login.defs and skeleton and write only its account files. chroot
needs root privileges, and a root without /etc/passwd has no accounts to manage: both
are said (`unmanageable`) rather than attempted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.system.interface import System, ToolError

PASSWD = "/etc/passwd"
GROUP = "/etc/group"
TOOL_TIMEOUT = 120.0


class AccountError(ToolError):
    """A shadow tool failed; carries its own words (it never sees a password here)."""

    kind = "account"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    comment: str
    home: str
    shell: str


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Accounts:
    """The account database of one root, as its files say."""

    users: dict[str, User]
    groups: dict[str, Group]

    def group(self, ref: str) -> Group | None:
        """A group by name, or by number when `ref` is all digits."""
        if ref.isdigit():
            return next((g for g in self.groups.values() if g.gid == int(ref)), None)
        return self.groups.get(ref)

    def group_name(self, gid: int) -> str:
        """The name of a gid, or the number itself when no group has it."""
        return next((g.name for g in self.groups.values() if g.gid == gid), str(gid))

    def member_of(self, user: str) -> tuple[str, ...]:
        """The user's supplementary groups, sorted."""
        return tuple(sorted(g.name for g in self.groups.values() if user in g.members))


def read(system: System) -> Accounts | None:
    """The root's accounts; None when it has no /etc/passwd."""
    if system.lstat(PASSWD) is None:
        return None
    users = {}
    for fields in _records(system, PASSWD, 7):
        users[fields[0]] = User(fields[0], int(fields[2]), int(fields[3]), fields[4], fields[5],
                                fields[6])
    groups = {}
    if system.lstat(GROUP) is not None:
        for fields in _records(system, GROUP, 4):
            groups[fields[0]] = Group(fields[0], int(fields[2]),
                                      tuple(m for m in fields[3].split(",") if m))
    return Accounts(users, groups)


def _records(system: System, path: str, width: int) -> list[list[str]]:
    """The colon-separated records of an account file; NIS `+`/`-` lines are skipped."""
    found = []
    for number, line in enumerate(system.read(path).decode("utf-8", "replace").splitlines(), 1):
        if not line.strip() or line.startswith(("+", "-", "#")):
            continue
        fields = line.split(":")
        if len(fields) != width or not fields[2].isdigit() or \
                (width == 7 and not fields[3].isdigit()):
            raise ValueError(f"{path}:{number}: not a valid entry; refusing to guess")
        found.append(fields)
    return found


def unmanageable(system: System) -> str | None:
    """Why accounts cannot be changed under this system's root, or None when they can."""
    if system.root == "/":
        return None
    if not system.can_chown:
        return f"the shadow tools chroot into {system.root} (--root), which needs root " \
               "privileges"
    if system.lstat(PASSWD) is None:
        return f"{system.root} has no /etc/passwd: no account database to change"
    return None


def run(system: System, tool: str, name: str, args: Sequence[str]) -> None:
    """Run one shadow tool on `name`, under the system's root; raise AccountError if it
    fails. Warnings on stderr with exit 0 (a shell missing under a chroot) are fine."""
    root = ["--root", system.root] if system.root != "/" else []
    result = system.run([tool, *root, *args, "--", name], timeout=TOOL_TIMEOUT, mutates=True)
    if result.timed_out:
        raise AccountError(name, f"{tool} timed out after {TOOL_TIMEOUT:g}s", result.stderr)
    if result.returncode != 0:
        raise AccountError(name, f"{tool} exited {result.returncode}", result.stderr)
