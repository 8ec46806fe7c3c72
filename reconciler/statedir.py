"""Where reconciler keeps its own files on a node: one `StateDir` value names them all.

Every module that reads or writes one of these files is handed a `StateDir` (or the
one path it needs from it); none builds a path inside the state directory by itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Problem, UsageError

AGENT_CONFIG = "/etc/reconciler/agent.toml"
AGE_IDENTITY = "/etc/reconciler/age.key"  # the node's private age key (secrets), 0600
DEFAULT = Path("/var/lib/reconciler")
SIGNING_KEY = Path("/etc/reconciler/signing-key")  # the node's SSH key for its fleet reports


@dataclass(frozen=True)
class StateDir:
    """The state directory of one node (`/var/lib/reconciler` in production)."""

    path: Path
    # The part of `path` the operator named (followed as the system resolves it); below
    # it nothing is followed. None: all of `path` was named (`--state-dir`, agent.toml).
    named: Path | None = None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> StateDir:
        """The state directory at `path`, made absolute (relative to the current directory)."""
        return cls(Path(os.path.abspath(path)))

    @classmethod
    def under(cls, root: str | os.PathLike[str]) -> StateDir:
        """`var/lib/reconciler` under a node root, so a demo root is self-contained; only
        the root itself is taken as named, what lies below it is the node's to plant."""
        root = os.path.abspath(root)
        path = Path(root) / DEFAULT.relative_to("/")
        return cls(path) if root == "/" else cls(path, Path(root))

    def ensure(self) -> None:
        """Create the directory (mode 0700: it holds backups of secret files) and make sure
        it can be trusted: reached without a link below the part the operator named, owned
        by the running user, writable by nobody else, and with no symlink, hard link or
        other impostor where reconciler keeps one of its own files. `UsageError` if not."""
        named = self.named or self.path
        if self.named is None:
            ensure_directory(named, "state-dir", 0o700)
        else:
            ensure_directory(named, "root", 0o755)
        fd = os.open(named, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            here = named
            for index, name in enumerate(self.path.relative_to(named).parts):
                if index:
                    _owned_safely(fd, here, final=False)
                here = here / name
                next_fd = _step(fd, name, here)
                os.close(fd)
                fd = next_fd
            _owned_safely(fd, here, final=True)
            _no_impostors(fd, here)
        finally:
            os.close(fd)

    @property
    def lock(self) -> Path:
        """flock'ed by the one run allowed at a time."""
        return self.path / "lock"

    @property
    def source_cache(self) -> Path:
        """The bare cache of the config repo."""
        return self.path / "source.git"

    @property
    def source_state(self) -> Path:
        """Last good commit, refused tip, rollback pin."""
        return self.path / "source-state.json"

    @property
    def applied(self) -> Path:
        """What reconciler last wrote, per path (hashes, never contents)."""
        return self.path / "applied.json"

    @property
    def last_run(self) -> Path:
        """The report of the last run."""
        return self.path / "last-run.json"

    @property
    def last_success(self) -> Path:
        """When the last run that did not fail was, and at which commit."""
        return self.path / "last-success.json"

    @property
    def history(self) -> Path:
        """The node's own git history of runs."""
        return self.path / "history"

    @property
    def backups(self) -> Path:
        """Originals of replaced files, by sha256 (secret ones sealed), and their index."""
        return self.path / "backups"

    @property
    def secret_digest_key(self) -> Path:
        """The node's key naming secret files in its records (HMAC, never a plain hash)."""
        return self.path / "secret-digest.key"

    @property
    def template_cache(self) -> Path:
        """Compiled templates, reused across runs."""
        return self.path / "cache" / "templates"

    @property
    def repeat(self) -> Path:
        """What the last audit found drifted and printed, to say it again (record/repeat.py)."""
        return self.path / "repeat.json"

    @property
    def metrics(self) -> Path:
        """The Prometheus textfile of the last run (unless the agent is told another)."""
        return self.path / "reconciler.prom"

    def __str__(self) -> str:
        return str(self.path)


# What reconciler keeps in its state directory: each must be what reconciler made there.
OWN_FILES = ("lock", "source-state.json", "applied.json", "last-run.json", "last-success.json",
             "secret-digest.key", "reconciler.prom", "quiet.json", "desired.pack", "repeat.json")
OWN_DIRECTORIES = ("source.git", "history", "backups", "cache", "cache/templates")


def _refuse(message: str, path: Path) -> UsageError:
    return UsageError([Problem(message, str(path))])


def _step(fd: int, name: str, here: Path) -> int:
    """An fd on directory `name` of `fd` (created 0700 when missing), never through a link."""
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=fd)
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symlink" if _is_link(fd, name) else "not a directory"
            raise _refuse(f"is {kind}; refusing to follow it to a state directory", here) \
                from None
        raise _refuse(f"cannot use it as the state directory: {exc.strerror or exc}", here) \
            from None


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _owned_safely(fd: int, here: Path, final: bool) -> None:
    """The state directory must be the running user's; a directory on the way to it below
    the named part, the running user's or root's; neither writable by group or others."""
    found = os.fstat(fd)
    me = os.geteuid()
    owners = (me,) if final else (me, 0)
    what = "the state directory" if final else "a directory on the way to the state directory"
    if found.st_uid not in owners:
        raise _refuse(f"{what} is owned by uid {found.st_uid}, not by the running user "
                      f"(uid {me}); refusing to use it", here)
    if found.st_mode & 0o022:
        raise _refuse(f"{what} is writable by its group or others (mode "
                      f"{stat.S_IMODE(found.st_mode):04o}); refusing to use it "
                      f"(chmod go-w it)", here)


def _no_impostors(fd: int, here: Path) -> None:
    """Refuse a symlink (or anything but what reconciler makes) where it keeps its own
    files: a planted `lock` link would truncate its target, a `backups` one write outside."""
    for name in OWN_FILES + OWN_DIRECTORIES:
        try:
            found = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        want = "directory" if name in OWN_DIRECTORIES else "file"
        if stat.S_ISLNK(found.st_mode):
            kind = "a symlink"
        elif want == "file" and not stat.S_ISREG(found.st_mode):
            kind = "not a regular file"
        elif want == "file" and found.st_nlink != 1:
            kind = "a hard link"
        else:
            continue  # a file where a directory belongs fails where it is used, and says so
        raise _refuse(f"is {kind}, where reconciler keeps its own {want}; refusing to "
                      f"follow or replace it (remove it if reconciler did not make it)",
                      here / name)


def ensure_directory(path: Path, setting: str, mode: int) -> None:
    """Create a directory a setting names, or say clearly why it cannot be used."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise UsageError([Problem(f"cannot use it as the {setting} directory: "
                                  f"{exc.strerror or exc}", str(path))]) from None
