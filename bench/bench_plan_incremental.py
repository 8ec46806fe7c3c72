"""Benchmark incremental `reconciler plan` against full plans, whole processes each time.

On the 10,000-node fleet generated from the example (bench/fleetgen.py), from a base
whose dependency records an earlier plan wrote: one class template changed (the proxies'
nginx.conf.j2, 3,000 proxies), and one variable of one cluster changed (its datacenter
name, read by every node of that cluster). Each is planned incrementally and with
`--full` (every node rendered twice, as every plan did before records), interleaved and
repeated so that a shared, noisy machine hurts both alike; the figures are medians and
the ratio is full / incremental. Also: the full plan of 10,000 nodes, and of the 800-node
example. Peak RSS is the largest of the plan process and its workers.

Goals on 2 cores: template change <= 3 s, one cluster's variable <= 2 s, full plan of
10,000 nodes <= 10 s, of 800 nodes <= 1 s.

With `--baseline DIR` (a checkout of another reconciler, e.g. `git worktree add DIR
main`), every full plan is also run with that reconciler's package (PYTHONPATH=DIR),
interleaved, and the full plans' figures are given as ratios to it, of wall time and of
CPU time (that of the plan and its workers): on a loaded machine, the CPU ratio is the
figure to trust. The baseline plans clones of the fleets, so that neither reconciler
finds the compiled templates or records the other keeps in the repo's git directory.
Usage: python bench/bench_plan_incremental.py [ROUNDS] [--baseline DIR]   (default: 3)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import GIT, RECONCILER, example_repo
from fleetgen import generate

TEMPLATE = "templates/proxy/nginx.conf.j2"
CLUSTER = "gen005"
GOALS = {"template": 3.0, "variable": 2.0, "full-10000": 10.0, "full-800": 1.0}
# Runs one plan and prints its wall seconds, and the peak RSS (KiB) and CPU seconds of it
# and its workers.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=False)
seconds = time.monotonic() - started
used = resource.getrusage(resource.RUSAGE_CHILDREN)
peak, cpu = used.ru_maxrss, used.ru_utime + used.ru_stime
print(json.dumps({"seconds": seconds, "peak": peak, "cpu": cpu, "code": done.returncode,
                  "stdout": done.stdout, "stderr": done.stderr}))
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_edit(repo: Path, base: str, branch: str, path: str, old: str, new: str) -> str:
    """A commit on `base` that replaces `old` by `new` once in `path`."""
    git(repo, "checkout", "-q", "-B", branch, base)
    target = repo / path
    text = target.read_text()
    if old not in text:
        raise SystemExit(f"{old!r} is not in {path}: the example fleet changed")
    target.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-q", "--no-verify", "-am", f"bench: {branch}")
    return git(repo, "rev-parse", "HEAD")


def clone(repo: Path, target: Path) -> Path:
    """A clone of `repo`, with every commit of its branches (the cases'), and none of
    the plan state of its git directory."""
    subprocess.run([*GIT, "clone", "-q", str(repo), str(target)], check=True,
                   capture_output=True)
    return target


def measure(repo: Path, base: str, head: str, *extra: str,
            package: str | None = None) -> dict[str, object]:
    """One plan of base → head: seconds, peak RSS, and its JSON report; with the
    reconciler package found under `package` when given."""
    env = {**os.environ, "PYTHONPATH": package} if package else None
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, RECONCILER, "plan", "--repo", str(repo), "--base",
         base, "--head", head, "--format", "json", *extra],
        capture_output=True, text=True, check=True, env=env)
    result: dict[str, object] = json.loads(done.stdout)
    if result["code"] != 2:
        raise SystemExit(f"plan exited {result['code']}: {result['stderr']}")
    result["report"] = json.loads(str(result.pop("stdout")))
    return result


def main(rounds: int, baseline: str | None) -> int:
    cpus = len(os.sched_getaffinity(0))
    print(f"reconciler plan: incremental vs --full, {cpus} CPUs, {rounds} rounds interleaved")
    with tempfile.TemporaryDirectory(prefix="bench-plan-inc-") as tmp:
        example = example_repo(Path(tmp))
        big = Path(generate(str(example), str(Path(tmp) / "fleet-10000"), 10000))
        base = git(big, "rev-parse", "HEAD")
        subprocess.run([RECONCILER, "plan", "--repo", str(big), "--base", base, "--head",
                        base], check=True, capture_output=True)  # writes the base's records
        cases = {
            "template": commit_edit(big, base, "template", TEMPLATE, "server_tokens off;",
                                    "server_tokens build;"),
            "variable": commit_edit(big, base, "variable", "fleet.xml",
                                    f'<vars cluster="{CLUSTER}">\n    <var name="datacenter">'
                                    "Chicago, site 1<",
                                    f'<vars cluster="{CLUSTER}">\n    <var name="datacenter">'
                                    "Chicago, site 5<"),
        }
        small_base = git(example, "rev-parse", "HEAD")
        small_head = commit_edit(example, small_base, "template", TEMPLATE,
                                 "server_tokens off;", "server_tokens build;")
        runs: dict[str, list[dict[str, object]]] = {}
        # The baseline plans in clones of their own: a plan keeps compiled templates and
        # records in the repo's git directory, in a format that may differ between the
        # two reconcilers, and each would find and rewrite the other's.
        twins = {repo: clone(repo, Path(tmp) / f"{repo.name}-baseline")
                 for repo in (big, example)} if baseline else {}

        def run(name: str, repo: Path, base: str, head: str, *extra: str) -> None:
            versions = [(name, None, repo)] + ([(f"{name} baseline", baseline, twins[repo])]
                                               if baseline and "--full" in extra else [])
            for label, package, where in versions:
                result = measure(where, base, head, *extra, package=package)
                runs.setdefault(label, []).append(result)
                print(f"  {label}: {float(str(result['seconds'])):.2f} s ("
                      f"{float(str(result['cpu'])):.2f} s CPU), load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)

        for _ in range(rounds):
            for name, head in cases.items():
                run(name, big, base, head)
                run(f"{name} --full", big, base, head, "--full")
            run("full-800", example, small_base, small_head, "--full")
        return report(runs)


def report(runs: dict[str, list[dict[str, object]]]) -> int:
    """Print medians, ratios and goals; 1 when a goal is missed."""
    def median(name: str, what: str = "seconds") -> float:
        return statistics.median(float(str(r[what])) for r in runs[name])

    def peak(name: str) -> float:
        return max(int(str(r["peak"])) for r in runs[name]) / 1024

    missed = False
    for name in ("template", "variable"):
        last = runs[name][-1]["report"]
        assert isinstance(last, dict)
        quick, full = median(name), median(f"{name} --full")
        goal = GOALS[name]
        missed |= quick > goal
        print(f"{name:>9} change: {quick:6.2f} s incremental ({last['rendered_nodes']} nodes "
              f"rendered, peak {peak(name):.0f} MiB) vs {full:6.2f} s full (peak "
              f"{peak(name + ' --full'):.0f} MiB): {full / quick:5.1f}x faster; goal <= "
              f"{goal:.0f} s: {'ok' if quick <= goal else 'MISSED'}; {last['headline']}")
    full_big = statistics.median([median("template --full"), median("variable --full")])
    full_small = median("full-800")
    for label, seconds, goal, names in (
            ("10,000 nodes", full_big, GOALS["full-10000"], ("template --full",
                                                             "variable --full")),
            ("   800 nodes", full_small, GOALS["full-800"], ("full-800",))):
        missed |= seconds > goal
        versus = ""
        if all(f"{name} baseline" in runs for name in names):
            ratio = statistics.median(median(name) / median(f"{name} baseline")
                                      for name in names)
            cpu = statistics.median(median(name, "cpu") / median(f"{name} baseline", "cpu")
                                    for name in names)
            versus = f" = {ratio:.2f} x the baseline's wall time, {cpu:.2f} x its CPU " \
                     f"(peak {peak(names[0]):.0f} vs {peak(names[0] + ' baseline'):.0f} MiB)"
        print(f"full plan, {label}: {seconds:6.2f} s{versus}; goal <= {goal:.0f} s: "
              f"{'ok' if seconds <= goal else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    where = args.index("--baseline") + 1 if "--baseline" in args else None
    other = args[where] if where is not None else None
    plain = [a for i, a in enumerate(args) if a != "--baseline" and i != where]
    sys.exit(main(int(plain[0]) if plain else 3, other))
