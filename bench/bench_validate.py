"""Benchmark `reconciler validate`: every node compiled and every template rendered.

On the example fleet (800 nodes, from `reconciler init`) and on a 10,000-node fleet
generated from it (bench/fleetgen.py), whole `reconciler` process each time, working
tree and `--rev HEAD`. Targets on 2 cores: 800 nodes < 3 s, 10,000 nodes < 30 s.
Usage: python bench/bench_validate.py [NODES...]   (default: 800 10000)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import RECONCILER, example_repo
from fleetgen import generate

TARGETS = {800: 3.0, 10000: 30.0}


def validate(repo: Path, rev: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (all processes) and the summary line of one validate."""
    before = os.times()
    started = time.monotonic()
    done = subprocess.run([RECONCILER, "validate", "--repo", str(repo), *rev],
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"validate exited {done.returncode}: {done.stderr}")
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    return wall, cpu, done.stdout.strip()


def main(sizes: list[int]) -> int:
    cpus = len(os.sched_getaffinity(0))
    print(f"reconciler validate, {cpus} CPUs")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        example = example_repo(Path(tmp))
        for size in sizes:
            repo = example if size == 800 else \
                Path(generate(str(example), str(Path(tmp) / f"fleet-{size}"), size))
            for label, rev in (("working tree", []), ("--rev HEAD", ["--rev", "HEAD"])):
                wall, cpu, summary = validate(repo, rev)
                target = TARGETS.get(size)
                verdict = "" if target is None else (
                    f"  target < {target:.0f} s: {'ok' if wall < target else 'MISSED'}")
                failed |= target is not None and wall >= target
                print(f"{size:>6} nodes, {label:<12}: {wall:6.2f} s wall, {cpu:6.2f} s CPU "
                      f"({cpu / wall:.1f} cores){verdict}\n        {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or [800, 10000]))
