"""What one quiet poll costs the config server: CPU per poll of the git daemon's process
tree, and of nginx's worker for the tip file.

Serves bench_engine's config repo (as a bare repository with BRANCHES open branches and
its tip file, as hooks/post-receive writes it) with `git daemon` and with nginx on
127.0.0.1, and asks each POLLS times whether the followed branch moved, as a node can:

- `git fetch` of that one branch into a cache that has it (the full `run`);
- one v2 `ls-refs` of that one ref, spoken over one socket with nothing else asked, as
  a quiet run asks it (source/lsrefs.py): the least any git client can ask of git daemon;
- `git ls-remote` of that ref (git 2.39 sends no ref prefix for it: every ref comes);
- a protocol v0 advertisement (every ref, no ref prefix), for comparison;
- a conditional GET of the tip file (`If-None-Match`), answered 304 by nginx itself.

The daemon's CPU is its own and that of the children it reaped (/proc, utime..cstime);
nginx's is its worker's. Both count in clock ticks: many polls give a per-poll figure.
Usage: python bench/bench_server_poll.py [--polls N] [--gets N] [--branches N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_engine import make_repo
from nginx_support import nginx_serving

from reconciler.source.lsrefs import ask_git


def cpu_of(pid: int, children: bool) -> float:
    """CPU seconds of a process (utime, stime), and of the children it reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15 if children else 13]) \
        / os.sysconf("SC_CLK_TCK")


def per_poll(pid: int, children: bool, poll: Callable[[], object], polls: int) -> float:
    """Milliseconds of CPU process `pid` spends per call of `poll`, over `polls` calls."""
    before = cpu_of(pid, children)
    for _ in range(polls):
        poll()
    return (cpu_of(pid, children) - before) / polls * 1000


def conditional_get(port: int, path: str, etag: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"If-None-Match": etag})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 304:
        raise SystemExit(f"nginx answered {answer.status}, not 304")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(port: int) -> None:
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"nothing listens on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--gets", type=int, default=10000)
    parser.add_argument("--branches", type=int, default=300)
    args = parser.parse_args()
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        served = base / "served"
        served.mkdir()
        bare = served / "fleet.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(make_repo(base)), str(bare)],
                       check=True)
        for number in range(args.branches):
            subprocess.run(["git", "-C", str(bare), "branch", f"mr-{number}", "main"], check=True)
        tip = subprocess.run(["git", "-C", str(bare), "rev-parse", "main"], check=True,
                             capture_output=True, text=True).stdout.strip()
        (bare / "reconciler-tip").write_text(f"{tip} refs/heads/main\n")
        cache = base / "cache.git"
        subprocess.run(["git", "init", "-q", "--bare", str(cache)], check=True)
        git_port = free_port()
        url = f"git://127.0.0.1:{git_port}/fleet.git"
        exec_path = subprocess.run(["git", "--exec-path"], check=True, capture_output=True,
                                   text=True).stdout.strip()
        # git-daemon itself (`git daemon` would be its parent, not counting its CPU).
        daemon = subprocess.Popen(
            [f"{exec_path}/git-daemon", "--export-all", f"--base-path={served}", "--reuseaddr",
             "--listen=127.0.0.1", f"--port={git_port}", str(served)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        with nginx_serving(served, base / "nginx", log=False) as nginx:
            try:
                wait_for(git_port)
                fetch = ["git", "-C", str(cache), "-c", "maintenance.auto=false", "fetch", "-q",
                         "--no-tags", "--no-write-fetch-head", "--", url,
                         "+refs/heads/main:refs/heads/main"]
                subprocess.run(fetch, check=True, env=env)

                def command(*argv: str) -> Callable[[], object]:
                    return lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                                                  env=env)

                assert ask_git(url, "main", cache, 10) == tip
                figures = [
                    ("git fetch of main (the full run)", command(*fetch)),
                    ("one v2 ls-refs of main, as a quiet run asks it (the floor)", lambda: ask_git(
                        url, "main", cache, 10)),
                    ("git ls-remote of main, v2 (git 2.39 sends no ref-prefix: every ref)",
                     command("git", "-c", "protocol.version=2", "ls-remote", "--", url,
                             "refs/heads/main")),
                    ("git ls-remote, protocol v0 (every ref)", command(
                        "git", "-c", "protocol.version=0", "ls-remote", "--", url)),
                ]
                results = [(label, per_poll(daemon.pid, True, poll, args.polls))
                           for label, poll in figures]
                own = per_poll(daemon.pid, False, figures[1][1], args.polls)
                workers = Path(f"/proc/{nginx.pid}/task/{nginx.pid}/children").read_text().split()
                etag = _etag(nginx.port)
                web = per_poll(int(workers[0]), False, lambda: conditional_get(
                    nginx.port, "/fleet.git/reconciler-tip", etag), args.gets)
            finally:
                daemon.terminate()
                daemon.wait()
    print(f"config server CPU per quiet poll, {args.branches} open branches, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for label, figure in results:
        print(f"  git daemon, {label}: {figure:.2f} ms ({args.polls} polls)")
    print(f"    of which the listening daemon itself (accept, fork, reap): {own:.2f} ms; the "
          "rest is its two children (`git daemon --serve`, `git upload-pack`)")
    print(f"  nginx, conditional GET of the tip file (304): {web:.3f} ms ({args.gets} gets)")


def _etag(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/fleet.git/reconciler-tip")
    answer = conn.getresponse()
    answer.read()
    conn.close()
    etag = answer.getheader("ETag")
    if answer.status != 200 or etag is None:
        raise SystemExit(f"nginx answered {answer.status} without an ETag")
    return etag


if __name__ == "__main__":
    main()
