"""Benchmark one node with 1,000 templated files, whole `reconciler` process each time.

Prints wall time and peak RSS for: first apply (empty root, so an empty template cache
too), no-op audit, no-op apply, audit with 100 files drifted, the apply that repairs
them, and the same runs with `--format json`. With `--runs N` the whole sequence is
repeated on a fresh root N times and each line shows the best and the median.

Python's own bytecode (.pyc) is written to a private cache and warmed before timing,
as it is for an installed package; the development tree's PYTHONDONTWRITEBYTECODE
would otherwise recompile reconciler's sources in every process.
Targets (2 cores): no-op audit or apply < 0.5 s, first apply < 1.5 s.
Usage: python bench/bench_engine.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = 1000
DIRS = 20
DRIFTED = 100
NODE = "bench-01.tickets.chi1.sa"

TEMPLATE = """# {{ node.name }} — file %(index)d, managed by reconciler
[section-%(index)d]
workers = {{ workers }}
cluster = {{ node.cluster }}
{%% for server in upstreams %%}upstream_{{ loop.index }} = {{ server }}:%(index)d
{%% endfor %%}{%% if debug %%}debug = on
{%% endif %%}
"""


def make_repo(base: Path) -> Path:
    """A config repo whose single node manages FILES templated files in DIRS directories."""
    repo = base / "repo"
    (repo / "classes").mkdir(parents=True)
    (repo / "templates" / "bench").mkdir(parents=True)
    (repo / "fleet.xml").write_text(
        '<fleet domain="sa">\n  <defaults>\n'
        '    <var name="workers" type="int">8</var>\n'
        '    <var name="debug" type="bool">false</var>\n'
        '    <var name="upstreams" type="list"><item>10.0.0.1</item><item>10.0.0.2</item>'
        "<item>10.0.0.3</item></var>\n"
        '    <policy max-severity="reload"/>\n  </defaults>\n'
        '  <nodes class="bench" product="tickets" cluster="chi1" count="1"/>\n</fleet>\n'
    )
    actions = [f'  <directory path="/etc/bench/d{d:02d}" mode="0755"/>' for d in range(DIRS)]
    for index in range(FILES):
        template = f"bench/f{index:04d}.conf.j2"
        (repo / "templates" / template).write_text(TEMPLATE % {"index": index})
        actions.append(
            f'  <file path="/etc/bench/d{index % DIRS:02d}/f{index:04d}.conf" '
            f'template="{template}" mode="0644"/>'
        )
    (repo / "classes" / "bench.xml").write_text(
        '<class name="bench">\n' + "\n".join(actions) + "\n</class>\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench fleet"], check=True)
    return repo


def timed(label: str, argv: list[str], expect: set[int], env: dict[str, str]) -> \
        tuple[float, float, float]:
    """Run one whole process; its wall time (s), CPU time (user + system, s), peak RSS (MB).

    CPU time is steadier than wall time on a machine shared with other work."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if code not in expect:
        sys.exit(f"{label}: exit {code}, expected {sorted(expect)}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def drift(root: Path) -> None:
    """Append a line to DRIFTED of the managed files, as a person editing the box would."""
    for index in range(0, FILES, FILES // DRIFTED):
        path = root / f"etc/bench/d{index % DIRS:02d}/f{index:04d}.conf"
        path.write_text(path.read_text() + "# edited by hand\n")


def sequence(reconciler: str, repo: Path, root: Path, env: dict[str, str]) -> \
        list[tuple[str, float, float, float]]:
    """One pass over every measured run, from an empty root; (label, wall, CPU, MB) each."""
    shutil.rmtree(root, ignore_errors=True)
    common = ["--repo", str(repo), "--rev", "HEAD", "--node", NODE, "--root", str(root)]
    steps: list[tuple[str, str, list[str], set[int]]] = [
        ("first apply (converge from empty)", "apply", [], {2}),
        ("no-op audit", "audit", [], {0}),
        ("no-op apply", "apply", [], {0}),
        ("no-op audit --format json", "audit", ["--format", "json"], {0}),
        (f"audit with {DRIFTED} drifted", "audit", [], {2}),
        (f"apply repairing {DRIFTED}", "apply", [], {2}),
        ("no-op audit after repair", "audit", [], {0}),
    ]
    results = []
    for label, command, extra, expect in steps:
        if command == "audit" and expect == {2}:
            drift(root)
        results.append((label, *timed(label, [reconciler, command, *common, *extra], expect,
                                      env)))
    return results


def installed(base: Path) -> tuple[str, dict[str, str]]:
    """The `reconciler` command and an environment whose .pyc cache (under `base`) is
    written and warmed, as an installed package's is."""
    reconciler = shutil.which("reconciler") or str(Path(sys.executable).parent / "reconciler")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    subprocess.run([reconciler, "--help"], env=env, check=True, stdout=subprocess.DEVNULL)
    return reconciler, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat the sequence N times")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        reconciler, env = installed(base)
        repo = make_repo(base)
        print(f"node with {FILES} templated files in {DIRS} directories, "
              f"{os.cpu_count()} CPUs, durable writes (fsync), {runs} run(s)")
        passes = [sequence(reconciler, repo, base / "node", env) for _ in range(runs)]
        for index, (label, *_) in enumerate(passes[0]):
            walls = [p[index][1] for p in passes]
            cpu = min(p[index][2] for p in passes)
            rss = max(p[index][3] for p in passes)
            median = f"  median {statistics.median(walls):6.3f} s" if runs > 1 else ""
            print(f"{label:<36} best {min(walls):6.3f} s{median}  cpu {cpu:6.3f} s  "
                  f"peak RSS {rss:5.1f} MB")


if __name__ == "__main__":
    main()
