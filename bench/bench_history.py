"""Benchmark one history record of a drifted node: 1,000 managed files, 100 of them
changed since the previous record (what a repair, or a first audit of new drift, records).

Each process makes its own history, records the 1,000 files once, then records ROUNDS
times with another 100 files changed, and prints the median wall and CPU time (its own
and its git processes') of those records. With `--baseline DIR` (a checkout of another
reconciler, e.g. `git worktree add DIR main`), the same runs with that reconciler's
package (PYTHONPATH=DIR), interleaved, and the ratios.
Usage: python bench/bench_history.py [ROUNDS] [--baseline DIR]   (default: 20)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# One process: a history under a temporary directory, a first record, then ROUNDS records
# of 100 changed files each; prints the per-record wall and CPU seconds as JSON.
_RECORDS = """
import json, resource, sys, tempfile, time
from reconciler.record.history import History

def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    git = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + git.ru_utime + git.ru_stime

with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
    history = History(tmp + "/history", "bench-01.tickets.chi1.sa")
    files = {f"/etc/app{i}.conf": (f"line {i}\\n" * 40).encode() for i in range(1000)}
    history.record(files, b"{}\\n", "first", {"Node": "bench-01.tickets.chi1.sa"})
    walls, cpus = [], []
    for round in range(int(sys.argv[1])):
        for i in range(round % 10, 1000, 10):
            files[f"/etc/app{i}.conf"] += f"# hand edit {round}\\n".encode()
        started, used = time.perf_counter(), cpu()
        history.record(files, b'{"round": %d}\\n' % round, f"round {round}",
                       {"Node": "bench-01.tickets.chi1.sa"})
        walls.append(time.perf_counter() - started)
        cpus.append(cpu() - used)
print(json.dumps({"walls": walls, "cpus": cpus}))
"""


def measure(rounds: int, package: str | None) -> dict[str, list[float]]:
    """One process's records, with the reconciler found under `package` when given."""
    env = {**os.environ, "PYTHONPATH": package} if package else None
    # -P: the package comes from PYTHONPATH or the install, never from the current directory.
    done = subprocess.run([sys.executable, "-P", "-c", _RECORDS, str(rounds)], capture_output=True,
                          text=True, check=True, env=env)
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rounds", type=int, nargs="?", default=20)
    parser.add_argument("--baseline", help="a checkout of another reconciler to compare")
    args = parser.parse_args()
    versions: list[tuple[str, str | None]] = [("this", None)]
    if args.baseline:
        versions.append(("baseline", str(Path(args.baseline).resolve())))
    runs: dict[str, dict[str, list[float]]] = {name: {"walls": [], "cpus": []}
                                                for name, _ in versions}
    for _ in range(3):  # interleaved, so a noisy machine hurts both alike
        for name, package in versions:
            found = measure(args.rounds, package)
            runs[name]["walls"] += found["walls"]
            runs[name]["cpus"] += found["cpus"]
    print(f"history record, 100 of 1,000 files changed, {3 * args.rounds} records each, "
          f"load {os.getloadavg()[0]:.1f}")
    medians = {name: (statistics.median(r["walls"]), statistics.median(r["cpus"]))
               for name, r in runs.items()}
    for name, (wall, cpu) in medians.items():
        print(f"  {name}: {wall * 1000:6.1f} ms wall, {cpu * 1000:6.1f} ms CPU (median)")
    if args.baseline:
        (wall, cpu), (base_wall, base_cpu) = medians["this"], medians["baseline"]
        print(f"  ratio: {wall / base_wall:.2f}x the baseline's wall, "
              f"{cpu / base_cpu:.2f}x its CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
