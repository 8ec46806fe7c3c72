"""Benchmark fact gathering: what a run spends learning what its node is.

Gathers this machine's facts the way a run does (`gather_live` over the host's /proc
and /sys and the node's System for os-release), in-process, many times; prints the
median, the 99th percentile and the worst.
Target: at most 20 ms per run.
Usage: python bench/bench_facts.py [--runs 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

from reconciler.facts.gather import gather_live
from reconciler.system.local import LocalSystem

TARGET_MS = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    system = LocalSystem("/")
    gather_live(system)  # the first run pays for imports and page cache
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        facts = gather_live(system)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"fact gathering, {args.runs} runs on {facts.cpu.count} CPUs, "
          f"{len(facts.interfaces)} interfaces, {len(facts.disks)} disks:")
    print(f"  median {statistics.median(times):.2f} ms, p99 {p99:.2f} ms, "
          f"worst {times[-1]:.2f} ms (target {TARGET_MS:.0f} ms)")


if __name__ == "__main__":
    main()
