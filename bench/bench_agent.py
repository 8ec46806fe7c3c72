"""Benchmark the agent on a node with 1,000 templated files (bench_engine's repo).

Measures, against the real `reconciler agent` process in change mode:
- edit-to-heal: a hand edit of one managed file until the agent has rewritten it
  (median and worst of 20, one edit at a time);
- idle CPU: CPU seconds the agent uses over a minute with nothing happening;
- resident memory while it watches the 1,000 files.
Targets: edit-to-heal under 2 s; idle CPU under 0.5 s per minute; RSS under 150 MB.

Usage: python bench/bench_agent.py [--idle-seconds 60] [--edits 20]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import DIRS, FILES, NODE, make_repo

TICKS = os.sysconf("SC_CLK_TCK")


class Agent:
    """The agent process and its JSON events."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, env=env)
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                sys.stderr.write(line)

    def wait_for(self, name: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                sys.exit(f"agent: no {name!r} event (exit {self.process.poll()})")
            try:
                event = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if event["event"] in ("error", "watch-failed", "watch-unavailable"):
                sys.exit(f"agent: {event}")
            if event["event"] == name:
                return event

    def cpu_seconds(self) -> float:
        """CPU time of all the agent's threads, to the nanosecond (schedstat), falling back
        to clock ticks of the live threads (stat) where schedstat is missing."""
        total = 0.0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0]) / 1e9
            except FileNotFoundError:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
            except ProcessLookupError:
                continue  # the thread ended meanwhile
        return total

    def memory_mb(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def edit_to_heal(agent: Agent, root: Path, edits: int) -> list[float]:
    """Seconds from each hand edit until the file is back as desired."""
    timings = []
    for step in range(edits):
        index = (step * 37) % FILES
        path = root / f"etc/bench/d{index % DIRS:02d}/f{index:04d}.conf"
        desired = path.read_bytes()
        started = time.perf_counter()
        path.write_bytes(desired + b"# edited by hand\n")
        deadline = started + 30
        while path.read_bytes() != desired:
            if time.perf_counter() > deadline:
                sys.exit(f"{path} not healed within 30 s")
            time.sleep(0.002)
        timings.append(time.perf_counter() - started)
        agent.wait_for("watch")  # the audit recorded; the next edit starts from quiet
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    reconciler = shutil.which("reconciler") or str(Path(sys.executable).parent / "reconciler")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = make_repo(base)
        root = base / "node"
        config = base / "agent.toml"
        config.write_text(
            f'remote = "file://{repo}"\nnode = "{NODE}"\nroot = "{root}"\n'
            f'state-dir = "{base / "state"}"\nmode = "change"\ninterval = 3600\nsplay = 0\n'
        )
        env = {**os.environ, "HOME": str(base), "GIT_CONFIG_NOSYSTEM": "1"}
        print(f"node with {FILES} templated files in {DIRS} directories, "
              f"{os.cpu_count()} CPUs")
        started = time.perf_counter()
        agent = Agent([reconciler, "agent", "--config", str(config), "--log-format", "json"],
                      env)
        first = agent.wait_for("cycle")
        watching = agent.wait_for("watching")
        print(f"first cycle (converge from empty)  {time.perf_counter() - started:6.2f} s   "
              f"result {first['result']}, watching {watching['paths']} paths in "
              f"{watching['directories']} directories")
        timings = edit_to_heal(agent, root, args.edits)
        print(f"edit-to-heal, {len(timings)} edits        median {statistics.median(timings):.3f} s"
              f"   worst {max(timings):.3f} s   (target < 2 s)")
        time.sleep(2)
        cpu_before = agent.cpu_seconds()
        time.sleep(args.idle_seconds)
        idle = agent.cpu_seconds() - cpu_before
        per_minute = idle * 60 / args.idle_seconds
        print(f"idle CPU over {args.idle_seconds:.0f} s             {idle:.3f} s "
              f"({per_minute:.3f} s per minute; target < 0.5)")
        threads = len(list(Path(f"/proc/{agent.process.pid}/task").iterdir()))
        print(f"threads                            {threads}")
        print(f"resident memory watching           {agent.memory_mb('VmRSS'):6.1f} MB   "
              f"peak {agent.memory_mb('VmHWM'):.1f} MB   (target < 150 MB)")
        code = agent.stop()
        print(f"stopped with SIGTERM               exit {code}")


if __name__ == "__main__":
    main()
