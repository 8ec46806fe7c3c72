"""Install the config repo's git hooks: pre-commit in a clone, pre-receive and post-receive
(the tip file, source/tip.py) on the server.

The hook scripts live in the package (`hooks/`). An installed copy records the
absolute path of the `reconciler` that installed it, so it runs the same version even
when the committer's PATH lacks it; it falls back to `reconciler` on PATH, and the
`RECONCILER` environment variable overrides both.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.git import Git

CLIENT_HOOKS = ("pre-commit",)
SERVER_HOOKS = ("pre-receive", "post-receive")
SCRIPTS = ("pre-commit", "pre-receive", "post-receive", "pre-receive-reports", "mr-check")
MARKER = "# reconciler hook"
_RECORD = "installed_reconciler="


def hook_source(name: str) -> Path:
    """The packaged script `name` (one of SCRIPTS)."""
    if name not in SCRIPTS:
        raise UsageError.because(f"unknown hook {name!r} (expected one of {', '.join(SCRIPTS)})")
    return Path(str(resources.files("reconciler") / "data" / "hooks" / name))


def reconciler_executable() -> str | None:
    """The `reconciler` script next to the running interpreter, else the one on PATH."""
    beside = Path(os.path.abspath(sys.executable)).parent / "reconciler"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("reconciler")
    return os.path.abspath(found) if found else None


def _hooks_dir(repo_path: str) -> Path:
    """Where git looks for hooks in this repository (honours core.hooksPath)."""
    done = Git(repo_path).run("rev-parse", "--git-path", "hooks")
    if not done.ok:
        raise UsageError.because(f"{repo_path} is not a git repository: {done.stderr.strip()}")
    path = Path(done.out.strip())
    return path if path.is_absolute() else Path(repo_path) / path


def _is_bare(repo_path: str) -> bool:
    return (Git(repo_path).ok("rev-parse", "--is-bare-repository") or "").strip() == "true"


def render_hook(name: str, executable: str | None) -> str:
    """The script `name` with the reconciler executable recorded in it."""
    lines = hook_source(name).read_text().splitlines(keepends=True)
    recorded = shlex.quote(executable) if executable else "''"
    return "".join(f"{_RECORD}{recorded}\n" if line.startswith(_RECORD) else line
                   for line in lines)


def install_hooks(repo_path: str, server: bool = False, force: bool = False,
                  reports: bool = False) -> list[str]:
    """Install pre-commit into a clone (or pre-receive and post-receive into a bare repo
    when `server`; with `reports`, only the reports repository's pre-receive,
    pre-receive-reports).

    Returns the paths written. A hook that is not ours is never overwritten unless
    `force`; ours is replaced (an upgrade).
    """
    if server and not _is_bare(repo_path):
        raise UsageError.because(f"{repo_path} is not a bare repository "
                                 "(--server installs pre-receive on the git server)")
    if not server and _is_bare(repo_path):
        raise UsageError.because(f"{repo_path} is a bare repository: use --server PATH")
    hooks_dir = _hooks_dir(repo_path)
    hooks_dir.mkdir(parents=True, exist_ok=True)
    executable = reconciler_executable()
    written = []
    for name in (("pre-receive",) if reports else SERVER_HOOKS) if server else CLIENT_HOOKS:
        target = hooks_dir / name
        if target.exists() and not force and MARKER not in target.read_text(errors="replace"):
            raise UsageError.because(f"{target} exists and was not installed by reconciler "
                                     "(move it away, or use --force to replace it)")
        temporary = target.with_name(f".{name}.reconciler-new")
        source = "pre-receive-reports" if reports and name == "pre-receive" else name
        temporary.write_text(render_hook(source, executable))
        temporary.chmod(0o755)
        os.replace(temporary, target)
        written.append(str(target))
    return written
