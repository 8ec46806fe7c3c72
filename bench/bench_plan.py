"""Benchmark `reconciler plan` across a whole fleet, whole `reconciler` process each time.

Two commits that differ in one class template (the proxies' nginx.conf.j2), so every
node is compiled and rendered twice and 240 (or 3,000) proxies change: on the example
fleet (800 nodes, from `reconciler init`) and on a 10,000-node fleet generated from it
(bench/fleetgen.py). Prints wall time and peak RSS (the largest of the plan process
and its workers). Targets on 2 cores: 800 nodes < 5 s, 10,000 nodes < 60 s.
Usage: python bench/bench_plan.py [NODES...]   (default: 800 10000)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetgen import generate

RECONCILER = str(Path(sys.executable).parent / "reconciler")
TEMPLATE = "templates/proxy/nginx.conf.j2"
TARGETS = {800: 5.0, 10000: 60.0}
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def example_repo(base: Path) -> Path:
    """The example fleet, as `reconciler init` creates it."""
    repo = base / "example"
    subprocess.run([RECONCILER, "init", str(repo)], check=True, capture_output=True)
    return repo


def change_one_template(repo: Path) -> None:
    """Commit one changed line in the proxies' nginx.conf template."""
    path = repo / TEMPLATE
    path.write_text(path.read_text().replace("server_tokens off;", "server_tokens build;"))
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", "bench: one template line"],
                   check=True)


def plan(repo: Path) -> tuple[float, int, dict[str, object]]:
    """Wall seconds, peak RSS in KiB, and the JSON report of one `reconciler plan`."""
    started = time.monotonic()
    done = subprocess.run([RECONCILER, "plan", "--repo", str(repo), "--base", "HEAD~1",
                           "--head", "HEAD", "--format", "json"],
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 2:
        raise SystemExit(f"plan exited {done.returncode}: {done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report: dict[str, object] = json.loads(done.stdout)
    return seconds, peak, report


def main(sizes: list[int]) -> int:
    cpus = len(os.sched_getaffinity(0))
    print(f"reconciler plan, one class template changed, {cpus} CPUs")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        example = example_repo(Path(tmp))
        repos = {size: example if size == 800 else
                 Path(generate(str(example), str(Path(tmp) / f"fleet-{size}"), size))
                 for size in sizes}
        for size, repo in repos.items():
            change_one_template(repo)
            seconds, peak, report = plan(repo)
            target = TARGETS.get(size)
            verdict = "" if target is None else (
                f"  target < {target:.0f} s: {'ok' if seconds < target else 'MISSED'}")
            failed |= target is not None and seconds >= target
            print(f"{size:>6} nodes: {seconds:6.2f} s wall, peak RSS {peak / 1024:6.1f} MiB, "
                  f"{report['headline']}{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or [800, 10000]))
