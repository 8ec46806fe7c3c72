"""What the render budget costs: one node of each class of the example fleet rendered
in-process (`render_node`) and in the budgeted child process (`render_bounded`).

Both use a warm renderer (templates compiled once), as a node's periodic run does with
its template cache, so the difference is the fork, the limits and the pickled answer.
Prints milliseconds per node (median of ROUNDS) for each, and the added cost.
Usage: python bench/bench_render_budget.py [ROUNDS]   (default: 20)
"""

from __future__ import annotations

import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.render.budget import Budget, render_bounded
from reconciler.render.renderer import Renderer, render_node
from reconciler.source.snapshot import open_snapshot

RECONCILER = str(Path(sys.executable).parent / "reconciler")


def median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as base:
        repo = Path(base) / "example"
        subprocess.run([RECONCILER, "init", str(repo)], check=True, capture_output=True)
        fleet = load_fleet(open_snapshot(str(repo), None))
        seen: set[str] = set()
        print(f"{'node':40} {'in-process':>11} {'budgeted':>9} {'added':>7}")
        for name in fleet.node_names(None, None, None):
            node = compile_node(fleet, name)
            if node.cls in seen:
                continue
            seen.add(node.cls)
            renderer = Renderer(fleet)
            render_node(renderer, node)  # compile the templates once
            inside = median_ms(functools.partial(render_node, renderer, node), rounds)
            bounded = median_ms(functools.partial(render_bounded, renderer, node, Budget(),
                                                  lambda: False), rounds)
            print(f"{name:40} {inside:9.1f}ms {bounded:7.1f}ms {bounded - inside:5.1f}ms")


if __name__ == "__main__":
    main()
