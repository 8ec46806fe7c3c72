"""A converge killed at any point leaves every file old or new, never partial, and a
last-applied record that claims nothing the disk does not hold; the next run converges
with nothing lost.

The run is a real process (forked from the test, after compiling and rendering once)
that SIGKILLs itself from a Python audit hook just before its Nth file-system call
(open, rename, remove, mkdir, chmod...) — seeded, so the kill points are the same on
every machine and no timing is involved. This tests a process crash; what a power
loss leaves is the filesystem's side of the argument in `Walker.caching`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
from pathlib import Path

from engine_support import desired, make_repo

from reconciler.run import Desired, converge
from reconciler.statedir import StateDir
from reconciler.system.local import LocalSystem

KILLS = 50
SEED = 18
# What the audit hook counts: every call that changes or opens something on disk.
COUNTED = frozenset({"open", "os.rename", "os.remove", "os.mkdir", "os.chmod", "os.chown",
                     "os.rmdir", "os.symlink", "os.listdir", "os.scandir"})


def tree(version: str) -> dict[str, str]:
    """Three directories of ten files; version b changes every file and adds a directory."""
    files = {f"web/site/d{d}/f{f}.conf": f"{version} d{d} f{f}\n" + "x" * (f * 400) + "\n"
             for d in range(3) for f in range(10)}
    if version == "b":
        files |= {f"web/site/extra/f{f}.conf": f"extra {f}\n" for f in range(5)}
    return files


def expected(files: dict[str, str]) -> dict[str, bytes]:
    return {"/etc/site/" + rel.removeprefix("web/site/"): data.encode()
            for rel, data in files.items()}


def on_disk(root: Path, temp: bool = False) -> dict[str, bytes]:
    """The files under root/etc (node path: bytes); with `temp`, only the temp files a
    killed run left (the next run removes them), else only the others."""
    found = {}
    for dirpath, _, filenames in os.walk(root / "etc"):
        for name in filenames:
            if (".reconciler-" in name) == temp:
                path = Path(dirpath, name)
                found["/" + str(path.relative_to(root))] = path.read_bytes()
    return found


def record(state: StateDir) -> dict[str, dict[str, object]]:
    try:
        paths: dict[str, dict[str, object]] = json.loads(state.applied.read_bytes())["paths"]
    except FileNotFoundError:
        return {}
    return paths


def converge_killed(want: Desired, root: Path, state: StateDir, kill_at: int | None) -> bool:
    """Converge `root` to `want` in a child process killed just before its `kill_at`th
    counted call (never, with None); whether it was killed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        calls = 0

        def hook(event: str, _args: tuple[object, ...]) -> None:
            nonlocal calls
            if event in COUNTED:
                calls += 1
                if calls == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

        try:
            sys.addaudithook(hook)
            converge(want, LocalSystem(str(root)), state, "change")
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) or os.WTERMSIG(status) == signal.SIGKILL, status
    return os.WIFSIGNALED(status)


def test_a_converge_killed_anywhere_leaves_old_or_new_files_and_the_next_run_loses_nothing(
    tmp_path: Path,
) -> None:
    templates: dict[str, str | bytes] = {**tree("a")}
    repo = make_repo(tmp_path, '<tree path="/etc/site" source="web/site" mode="0644"/>',
                     templates=templates)
    wants = {"a": (desired(repo, repo.commit("a")), expected(tree("a")))}
    for rel, data in tree("b").items():
        repo.write(f"templates/{rel}", data)
    wants["b"] = (desired(repo, repo.commit("b")), expected(tree("b")))
    root, state = tmp_path / "root", StateDir.of(tmp_path / "state")
    root.mkdir()
    rng = random.Random(SEED)
    killed = 0

    for turn in range(KILLS):
        target = "ab"[turn % 2]
        want, new = wants[target]
        old_files, old_record = on_disk(root), record(state)
        # A whole run makes about 200 to 220 counted calls: most kill points fall inside it.
        killed += converge_killed(want, root, state, rng.randrange(1, 240))

        files = on_disk(root)
        for path in set(old_files) | set(new):
            assert files.get(path) in (old_files.get(path), new.get(path)), \
                f"turn {turn}: {path} is neither old nor new"
        for path, entry in record(state).items():
            if entry != old_record.get(path) and entry["type"] == "file":
                assert path in files, f"turn {turn}: {path} is recorded but not on disk"
                assert entry["sha256"] == hashlib.sha256(files[path]).hexdigest(), \
                    f"turn {turn}: {path} is recorded with content that is not on disk"

    assert killed > KILLS // 2
    for target in "ab":
        want, new = wants[target]
        assert not converge_killed(want, root, state, None)
        files = on_disk(root)
        assert {p: files[p] for p in new} == new
        assert set(files) - set(new) <= set(wants["b"][1])  # b's extra files: orphans, kept
        recorded = record(state)
        assert {p: recorded[p]["sha256"] for p in new} == \
            {p: hashlib.sha256(data).hexdigest() for p, data in new.items()}
    assert on_disk(root, temp=True) == {}
