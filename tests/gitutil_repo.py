"""Test helpers: real git repositories, signing keys and a `git daemon` on 127.0.0.1.

Every helper runs git with the test's HOME and without the system config, so the
host's git settings never leak into a test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.git import read_ref

IDENTITY = ("-c", "user.name=Test Author", "-c", "user.email=author@example.org")
# A helper's commit starts no `git maintenance run --auto` (2 ms of CPU each time): a
# test's own repositories never grow to need it.
NO_MAINTENANCE = ("-c", "maintenance.auto=false")
# A helper's repository gets no copy of git's template directory (sample hooks and the
# like, half of `git init`'s CPU): nothing of it is used, and a test that installs a hook
# makes the hooks directory itself.
NO_TEMPLATE = "--template="


def isolate_git(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make every git process of the test (ours and the library's) ignore host config."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GNUPGHOME", raising=False)
    monkeypatch.delenv("GIT_DIR", raising=False)


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git in `cwd` and return its stdout; fail the test with stderr on error."""
    done = subprocess.run(
        ["git", *IDENTITY, *NO_MAINTENANCE, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def head_commit(work: Path) -> str:
    """The commit HEAD names in the work tree `work`, read from git's files as
    `git rev-parse HEAD` would answer it, without starting git."""
    sha = _head(work)
    if sha is None:
        raise AssertionError(f"{work}: HEAD names no commit yet")
    return sha


def _head(work: Path) -> str | None:
    """head_commit, or None on a branch with no commit yet."""
    git_dir = work / ".git"
    head = (git_dir / "HEAD").read_text().strip()
    return read_ref(git_dir, head.removeprefix("ref: ")) if head.startswith("ref: ") else head


class Origin:
    """A bare "origin" repository and a work clone that commits and pushes to it.

    The bare repository borrows the work clone's objects (git's alternates, as a hosting
    service keeps forks), so a push to it is one `update-ref`, refused when it is not a
    fast-forward as `git push` refuses it, instead of the eight processes of a local
    `git push` (a tenth of a node test's CPU). A bare repository with a hook gets real
    pushes: the hook is what such a test is about."""

    def __init__(self, root: Path, name: str = "config") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git(root, "init", "--quiet", NO_TEMPLATE, "--bare", "--initial-branch=main",
            str(self.bare))
        git(root, "init", "--quiet", NO_TEMPLATE, "--initial-branch=main", str(self.work))
        with (self.work / ".git" / "config").open("a") as config:  # `git remote add`'s lines
            config.write(f'[remote "origin"]\n\turl = {self.bare}\n'
                         "\tfetch = +refs/heads/*:refs/remotes/origin/*\n")
        (self.bare / "objects" / "info" / "alternates").write_text(
            f"{self.work / '.git' / 'objects'}\n")

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(
        self,
        files: Mapping[str, str | bytes | None],
        message: str = "change",
        signing: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        push: bool = True,
    ) -> str:
        """Write (or with None, delete) files, commit, push; `signing` is extra `-c` config."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        git(self.work, "add", "--all")
        parent = _head(self.work)
        sign = [*signing, "commit", "-S"] if signing else ["commit"]
        git(self.work, *sign, "--quiet", "--allow-empty", "-m", message, env=env)
        sha = head_commit(self.work)
        if push:
            self._push(sha, [parent] if parent else [], force=False)
        return sha

    def push(self, force: bool = False) -> None:
        sha, *parents = git(self.work, "log", "-1", "--format=%H %P").split()
        self._push(sha, parents, force)

    def _push(self, sha: str, parents: Sequence[str], force: bool) -> None:
        hooks = self.bare / "hooks"
        if hooks.is_dir() and any(
                not hook.name.endswith(".sample") for hook in hooks.iterdir()):
            git(self.work, "push", "--quiet", *(["--force"] if force else []), "origin", "main")
            return
        old = read_ref(self.bare, "refs/heads/main")
        if not (force or old in (None, sha, *parents)) and subprocess.run(
                ["git", "merge-base", "--is-ancestor", str(old), sha], cwd=self.work,
                check=False).returncode != 0:
            raise AssertionError(f"git push origin main failed: {sha} is not a fast-forward "
                                 f"of {old} (non-fast-forward)")
        git(self.bare, "update-ref", "refs/heads/main", sha)

    def reset(self, rev: str) -> None:
        git(self.work, "reset", "--quiet", "--hard", rev)


def ssh_key(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair without passphrase; returns the private key path."""
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key


def ssh_signing(key: Path) -> list[str]:
    return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub"]


def allowed_signers(path: Path, entries: Mapping[str, Path]) -> Path:
    """An allowed-signers file: principal -> private key path (its .pub is listed)."""
    lines = [
        f'{who} namespaces="git" {Path(f"{key}.pub").read_text().strip()}'
        for who, key in entries.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["gpg", "--batch", "--quiet", "--no-tty", *args],
        env={**os.environ, "GNUPGHOME": str(home)},
        input=stdin,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"gpg {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout


def gpg_home(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True)
    return path


def gpg_new_key(home: Path, uid: str) -> str:
    """Generate an ed25519 signing key without passphrase; returns its fingerprint."""
    gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = gpg(home, "--with-colons", "--list-secret-keys", uid).decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def gpg_stop_agent(home: Path) -> None:
    subprocess.run(
        ["gpgconf", "--kill", "all"],
        env={**os.environ, "GNUPGHOME": str(home)},
        check=False,
        capture_output=True,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def git_daemon(base: Path) -> Iterator[int]:
    """Serve every repository under `base` over git:// on 127.0.0.1; yields the port."""
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--export-all", f"--base-path={base}", "--reuseaddr",
            "--listen=127.0.0.1", f"--port={port}", str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        daemon.terminate()
        daemon.wait(timeout=5)
