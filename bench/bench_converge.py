"""Benchmark a converge from empty with a cold template cache, whole `reconciler` process.

The peer benchmark's job (../shared/bench-peers/): 1,000 files, each rendered by its own
two-line wrapper template (`{% set app = apps["appN"] %}{% include "body-K.j2" %}`)
that includes one of 10 bodies. Prints, interleaved over `--runs`, the wall and CPU time
of `reconciler apply` from an empty root with the template cache removed, and with it
kept; and, in this process, what compiling and rendering the node costs cold (no cache)
and warm (from the pack): shared shapes (render/shapes.py) should keep the two close.
Usage: python bench/bench_converge.py [--runs N]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import installed, timed

FILES = 1000
BODIES = 10
NODE = "bench-01.tickets.chi1.sa"
BODY = """# {{ node.name }}: {{ app.name }} ({{ body }})
[server]
listen = {{ app.port }}
workers = {{ workers }}
{% for server in upstreams %}upstream = {{ server }}:{{ app.port }}
{% endfor %}"""


def make_repo(base: Path) -> Path:
    """The config repo: one node, FILES wrappers over BODIES bodies, one map of apps."""
    repo = base / "repo"
    (repo / "classes").mkdir(parents=True)
    (repo / "templates/bench/apps").mkdir(parents=True)
    (repo / "fleet.xml").write_text(
        '<fleet domain="sa">\n  <defaults>\n'
        '    <var name="workers" type="int">8</var>\n'
        '    <var name="upstreams" type="list"><item>10.0.0.1</item><item>10.0.0.2</item>'
        "</var>\n    <policy max-severity=\"reload\"/>\n  </defaults>\n"
        '  <nodes class="bench" product="tickets" cluster="chi1" count="1"/>\n</fleet>\n')
    for body in range(BODIES):
        (repo / f"templates/bench/body-{body}.j2").write_text(
            BODY.replace("{{ body }}", str(body)))
    apps, actions = [], ['  <directory path="/etc/apps" mode="0755"/>']
    for index in range(FILES):
        apps.append(f'<entry key="app{index}" type="map"><entry key="name">app{index}</entry>'
                    f'<entry key="port" type="int">{8000 + index}</entry></entry>')
        (repo / f"templates/bench/apps/app{index}.j2").write_text(
            f'{{% set app = apps["app{index}"] %}}{{% include "bench/body-{index % BODIES}.j2" %}}')
        actions.append(f'  <file path="/etc/apps/app{index}.conf" '
                       f'template="bench/apps/app{index}.j2" mode="0644"/>')
    (repo / "classes/bench.xml").write_text(
        '<class name="bench">\n  <var name="apps" type="map">' + "".join(apps) + "</var>\n"
        + "\n".join(actions) + "\n</class>\n")
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], check=True)
    return repo


def in_process(repo: Path, cache: Path) -> tuple[float, float]:
    """Seconds to compile and render the node's files cold (no cache), then warm."""
    from reconciler.compile.compiler import compile_node, load_fleet
    from reconciler.render.renderer import Renderer, render_node
    from reconciler.source.snapshot import open_snapshot

    fleet = load_fleet(open_snapshot(str(repo), "HEAD"))
    node = compile_node(fleet, NODE)
    render_node(Renderer(fleet), node)  # the repo's files read once, for both
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    renderer = Renderer(fleet, str(cache))
    render_node(renderer, node)
    cold = time.perf_counter() - started
    renderer.save_cache()
    started = time.perf_counter()
    render_node(Renderer(fleet, str(cache)), node)
    return cold, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        reconciler, env = installed(base)
        repo, root = make_repo(base), base / "node"
        state = root / "var/lib/reconciler"
        argv = [reconciler, "apply", "--repo", str(repo), "--rev", "HEAD", "--node", NODE,
                "--root", str(root), "--state-dir", str(state)]
        found: dict[str, list[tuple[float, float]]] = {"cold cache": [], "warm cache": []}
        for _ in range(runs):
            for label in found:
                shutil.rmtree(root / "etc", ignore_errors=True)
                if label == "cold cache":
                    shutil.rmtree(state / "cache", ignore_errors=True)
                root.mkdir(exist_ok=True)
                wall, cpu, _ = timed(label, argv, {2}, env)  # CPU: the render child too
                found[label].append((wall, cpu))
        print(f"converge from empty, {FILES} files from {FILES} wrapper templates, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {runs} run(s)")
        for label, times in found.items():
            print(f"  apply, {label:<10}  wall median {statistics.median(w for w, _ in times):6.3f}"
                  f" s (best {min(w for w, _ in times):6.3f})  cpu median "
                  f"{statistics.median(c for _, c in times):6.3f} s")
        cold, warm = in_process(repo, base / "cache")
        print(f"  compile and render in-process: cold {cold:6.3f} s, warm {warm:6.3f} s "
              f"({cold / warm:.1f}x)")


if __name__ == "__main__":
    main()
