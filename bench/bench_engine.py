"""Benchmark one node with 1,000 templated files, whole `reconciler` process each time.

Prints wall time and peak RSS for: first apply, no-op audit, no-op apply, audit with
100 files drifted, and the apply that repairs them. Usage: python bench/bench_engine.py
"""

from __future__ import annotations

import os
import shutil
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


def timed(label: str, argv: list[str], expect: set[int]) -> None:
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if code not in expect:
        sys.exit(f"{label}: exit {code}, expected {sorted(expect)}\n{stderr}")
    print(f"{label:<32} {wall:6.3f} s   peak RSS {usage.ru_maxrss / 1024:6.1f} MB   exit {code}")


def main() -> None:
    reconciler = shutil.which("reconciler") or str(Path(sys.executable).parent / "reconciler")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = make_repo(base)
        root = base / "node"
        common = ["--repo", str(repo), "--rev", "HEAD", "--node", NODE, "--root", str(root)]
        print(f"node with {FILES} templated files in {DIRS} directories, "
              f"{os.cpu_count()} CPUs, durable writes (fsync)")
        timed("first apply (converge from empty)", [reconciler, "apply", *common], {2})
        timed("no-op audit", [reconciler, "audit", *common], {0})
        timed("no-op apply", [reconciler, "apply", *common], {0})
        for index in range(0, FILES, FILES // DRIFTED):
            path = root / f"etc/bench/d{index % DIRS:02d}/f{index:04d}.conf"
            path.write_text(path.read_text() + "# edited by hand\n")
        timed(f"audit with {DRIFTED} drifted", [reconciler, "audit", *common], {2})
        timed(f"apply repairing {DRIFTED}", [reconciler, "apply", *common], {2})
        timed("no-op audit after repair", [reconciler, "audit", *common], {0})


if __name__ == "__main__":
    main()
