"""What a quiet `reconciler run` costs the node and the git server.

Builds bench_engine's 1,000-file node as a bare config remote with BRANCHES open
merge-request branches, served by `git daemon` on 127.0.0.1, and a node that follows
`main`. Prints, for the run in which nothing changed: the whole process's wall and CPU
time and peak RSS, the git processes it started (counted by a `git` wrapper on PATH),
and the git daemon's CPU per poll (its own and its children's, from /proc); then, for
comparison, the daemon's CPU per poll for a fetch of every branch (`+refs/heads/*`).
Usage: python bench/bench_quiet.py [--runs N] [--branches N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_engine import NODE, make_repo, timed

POLLS = 100  # the daemon's CPU is counted in clock ticks: many polls for a per-poll figure
WRAPPER = '#!/bin/sh\necho "$*" >> "{log}"\nexec {git} "$@"\n'


def verb(args: list[str]) -> str:
    """The git command of one logged call (`fetch` in `-C dir -c k=v fetch -q`)."""
    words = iter(args)
    for word in words:
        if word in ("-C", "-c"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return "?"


def daemon_cpu(pid: int) -> float:
    """CPU seconds of a process and of its children it has reaped (utime..cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def polls_cpu(daemon: int, argv: list[str], polls: int) -> float:
    """The daemon's CPU milliseconds per poll, over `polls` runs of `argv`."""
    before = daemon_cpu(daemon)
    for _ in range(polls):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return (daemon_cpu(daemon) - before) / polls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--branches", type=int, default=300)
    args = parser.parse_args()
    reconciler = shutil.which("reconciler") or str(Path(sys.executable).parent / "reconciler")
    real_git = shutil.which("git")
    assert real_git is not None
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = make_repo(base)
        served = base / "served"
        served.mkdir()
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(served / "fleet.git")],
                       check=True)
        bare = served / "fleet.git"
        for number in range(args.branches):
            subprocess.run(["git", "-C", str(bare), "branch", f"mr-{number}", "main"],
                           check=True)
        log = base / "git-calls"
        wrappers = base / "bin"
        wrappers.mkdir()
        (wrappers / "git").write_text(WRAPPER.format(log=log, git=real_git))
        (wrappers / "git").chmod(0o755)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        env["PATH"] = f"{wrappers}:{env['PATH']}"
        port = 9400 + os.getpid() % 500
        exec_path = subprocess.run(["git", "--exec-path"], check=True, capture_output=True,
                                   text=True).stdout.strip()
        # git-daemon itself (`git daemon` would be its parent, not counting its CPU).
        daemon = subprocess.Popen(
            [f"{exec_path}/git-daemon", "--export-all", f"--base-path={served}", "--reuseaddr",
             "--listen=127.0.0.1", f"--port={port}", str(served)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"git://127.0.0.1:{port}/fleet.git"
            config = base / "agent.toml"
            config.write_text(f'remote = "{url}"\nnode = "{NODE}"\nroot = "{base / "node"}"\n'
                              f'state-dir = "{base / "state"}"\nmax-severity = "reboot"\n')
            run = [reconciler, "run", "--config", str(config)]
            timed("first run", run, {0, 2}, env)
            timed("second run", run, {0}, env)
            log.write_text("")
            walls, cpus, rss = [], [], []
            before = daemon_cpu(daemon.pid)
            for _ in range(args.runs):
                wall, cpu, mb = timed("quiet run", run, {0}, env)
                walls.append(wall)
                cpus.append(cpu)
                rss.append(mb)
            per_run = (daemon_cpu(daemon.pid) - before) / args.runs * 1000
            calls = log.read_text().splitlines()
            verbs = sorted({verb(line.split()) for line in calls})
            cache = str(base / "state" / "source.git")
            every = ["git", "-C", cache, "fetch", "-q", "--prune", "--no-tags", "--", url,
                     "+refs/heads/*:refs/heads/*"]
            one = ["git", "-C", cache, "-c", "maintenance.auto=false", "fetch", "-q",
                   "--no-tags", "--no-write-fetch-head", "--", url,
                   "+refs/heads/main:refs/heads/main"]
            every_ms = polls_cpu(daemon.pid, every, POLLS)
            one_ms = polls_cpu(daemon.pid, one, POLLS)
        finally:
            daemon.terminate()
            daemon.wait()
        print(f"quiet `reconciler run`, 1,000 files, {args.branches} open branches, "
              f"{args.runs} runs, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(f"  wall best {min(walls):.3f} s median {statistics.median(walls):.3f} s, "
              f"cpu best {min(cpus):.3f} s, peak RSS {max(rss):.1f} MB")
        print(f"  git processes per run: {len(calls) / args.runs:.1f} ({', '.join(verbs)})")
        print(f"  git daemon CPU per quiet run: {per_run:.2f} ms")
        print(f"  git daemon CPU per poll ({POLLS} polls): `fetch main` {one_ms:.2f} ms, "
              f"`fetch refs/heads/*` {every_ms:.2f} ms")


if __name__ == "__main__":
    main()
