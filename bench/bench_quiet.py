"""What a quiet `reconciler run` costs the node and the git server.

Builds bench_engine's 1,000-file node as a bare config remote with BRANCHES open
merge-request branches, served by `git daemon` on 127.0.0.1, with its tip file (as
hooks/post-receive writes it) served by nginx, and two nodes that follow `main`: one
asks git whether the tip moved, the other the tip file (`tip-url`). Prints, for the
runs in which nothing changed, measured interleaved: each whole process's wall and CPU
time (its git processes included) and peak RSS, the git processes it started (counted
by a `git` wrapper on PATH), and the git daemon's CPU per run (its own and its
children's, from /proc); then the daemon's CPU per poll for a fetch of the one branch
and of every branch (`+refs/heads/*`). bench_server_poll.py breaks the server's share
down further.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from nginx_support import nginx_serving

POLLS = 100  # the daemon's CPU is counted in clock ticks: many polls for a per-poll figure
WRAPPER = '#!/bin/sh\necho "$*" >> "{log}"\nexec {git} "$@"\n'


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
        tip = subprocess.run(["git", "-C", str(bare), "rev-parse", "main"], check=True,
                             capture_output=True, text=True).stdout.strip()
        (bare / "reconciler-tip").write_text(f"{tip} refs/heads/main\n")
        with nginx_serving(served, base / "nginx", log=False) as nginx:
            try:
                url = f"git://127.0.0.1:{port}/fleet.git"
                tip_url = nginx.url("fleet.git/reconciler-tip")
                runs = {name: [reconciler, "run", "--config", str(node_config(
                    base / name, url, tip_url if name == "tip file" else None))]
                    for name in ("git", "tip file")}
                # A setting flag takes the full CLI and engine (their own quiet cycle): as before.
                runs["git, full CLI"] = [*runs["git"], "--fetch-timeout", "60"]
                for run in list(runs.values())[:2]:  # converge, check the cache, record in sync
                    timed("first run", run, {0, 2}, env)
                    timed("second run", run, {0}, env)
                    timed("third run", run, {0}, env)
                figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
                calls: dict[str, int] = dict.fromkeys(runs, 0)
                daemon_ms: dict[str, float] = dict.fromkeys(runs, 0.0)
                for _ in range(args.runs):
                    for name, run in runs.items():
                        log.write_text("")
                        before = daemon_cpu(daemon.pid)
                        figures[name].append(timed("quiet run", run, {0}, env))
                        daemon_ms[name] += (daemon_cpu(daemon.pid) - before) * 1000 / args.runs
                        calls[name] += len(log.read_text().splitlines())
                cache = str(base / "git" / "state" / "source.git")
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
              f"{args.runs} runs each, interleaved, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}")
        for name, measured in figures.items():
            walls, cpus, rss = zip(*measured, strict=True)
            print(f"  asking {name}: wall best {min(walls):.3f} s median "
                  f"{statistics.median(walls):.3f} s, cpu best {min(cpus):.3f} s median "
                  f"{statistics.median(cpus):.3f} s, peak RSS {max(rss):.1f} MB, "
                  f"{calls[name] / args.runs:.1f} git processes, git daemon CPU "
                  f"{daemon_ms[name]:.2f} ms per run")
        print(f"  git daemon CPU per poll ({POLLS} polls): `fetch main` {one_ms:.2f} ms, "
              f"`fetch refs/heads/*` {every_ms:.2f} ms")


def node_config(where: Path, url: str, tip_url: str | None) -> Path:
    """agent.toml of one node under `where`, asking `tip_url` first when given."""
    where.mkdir()
    config = where / "agent.toml"
    config.write_text(f'remote = "{url}"\nnode = "{NODE}"\nroot = "{where / "node"}"\n'
                      f'state-dir = "{where / "state"}"\nmax-severity = "reboot"\n' +
                      (f'tip-url = "{tip_url}"\n' if tip_url else ""))
    return config


if __name__ == "__main__":
    main()
