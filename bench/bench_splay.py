"""Polls per 10 s after a fleet-wide restart: 10,000 agents' own `Schedule`.

Every agent restarts within the same RESTART seconds (a fleet-wide upgrade), takes its
offset from its node name (`splay_offset`), its jitter from `max_jitter`, and a cycle
lasts CYCLE seconds. Counts each poll in its 10 s bucket of wall time over INTERVALS
intervals after the first, and prints the peak bucket over the mean one, for the
default splay (the whole interval) and for a policy splay of 60 s.
Target: peak / mean <= 1.3 with the default.
Usage: python bench/bench_splay.py [--agents N]
"""

from __future__ import annotations

import argparse
import random
import statistics

from reconciler.agent.splay import Schedule, max_jitter, splay_offset

INTERVAL = 300.0
RESTART = 30.0
CYCLE = 1.0
INTERVALS = 10
BUCKET = 10.0


def polls_per_bucket(agents: int, splay: float, seed: int = 1) -> list[int]:
    """Polls in each BUCKET of wall time from the second interval after the restart on."""
    rng = random.Random(seed)
    epoch = 1_800_000_000.0
    buckets = [0] * int(INTERVALS * INTERVAL / BUCKET)
    window_start = epoch + INTERVAL
    for number in range(agents):
        node = f"node-{number:05d}.fleet.example"
        wall = epoch + rng.uniform(0, RESTART)
        schedule = Schedule(INTERVAL, splay_offset(node, min(splay, INTERVAL)),
                            max_jitter(INTERVAL, splay), start=wall, wall=wall, rng=rng)
        while schedule.due < window_start + INTERVALS * INTERVAL:
            if schedule.due >= window_start:
                buckets[int((schedule.due - window_start) // BUCKET)] += 1
            schedule.advance(schedule.due + CYCLE)
    return buckets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    agents = parser.parse_args().agents
    print(f"{agents} agents restarted within {RESTART:.0f} s, interval {INTERVAL:.0f} s, "
          f"polls per {BUCKET:.0f} s over {INTERVALS} intervals")
    for label, splay in (("default splay (the interval)", INTERVAL), ("splay 60 s", 60.0)):
        buckets = polls_per_bucket(agents, splay)
        mean = statistics.fmean(buckets)
        print(f"  {label:<30} peak {max(buckets)} / mean {mean:.1f} = "
              f"{max(buckets) / mean:.2f}x")


if __name__ == "__main__":
    main()
