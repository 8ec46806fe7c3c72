"""Benchmark the fleet reports: reading 10,000 report refs, the page at 10,000 nodes, and
what publishing adds to a run.

1. A bare reports repository with N (default 10,000) report refs is written with one
   `git fast-import` (reports of varied results over three config commits).
2. `reconciler fleet status --reports PATH` (text and --format json), whole process.
3. `reconciler fleet serve` over the same repository: GET / (the summary page) and
   GET /api/status, after the server's first read.
4. One node run in this process (`run_cycle`, one file, repairing a hand edit so every
   run is news) with and without a signing key (with it, the run publishes; without,
   publishing is skipped at once), and `publish.after_run` timed alone, with news
   (queue + starting the pusher) and without.

Targets (2 cores): status over 10,000 refs <= 2 s; the summary page <= 1 s at 10,000
nodes; publishing adds <= 50 ms to a run.
Usage: python bench/bench_fleet.py [--nodes N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fleet_support import (  # noqa: E402 - the test helpers build the fleet and nodes
    CLASSES,
    FleetNode,
    bare,
    config_origin,
    fleet_xml,
    wait_published,
)
from gitutil_repo import free_port, wait_for_port  # noqa: E402

from reconciler.fleet import publish  # noqa: E402
from reconciler.fleet.model import ConfigRef, FleetReport, Item, ReportCounts, SourceInfo  # noqa: E402
from reconciler.record.report import Result  # noqa: E402

RECONCILER = str(Path(sys.executable).with_name("reconciler"))
_SHARES: dict[Result, int] = {"in-sync": 90, "changed": 4, "held": 3, "drift": 2, "failed": 1}
RESULTS: list[Result] = [result for result, share in _SHARES.items() for _ in range(share)]


def report_json(index: int, now: datetime) -> bytes:
    """A plausible report of node number `index`."""
    cls = ("proxy", "cache", "app", "database")[index % 4]
    cluster = ("chi1", "chi2", "lax1", "lax2")[index // 4 % 4]
    node = f"{cls}-{index:05d}.tickets.{cluster}.sa"
    result = RESULTS[index % len(RESULTS)]
    commit = ("a" * 40, "b" * 40, "c" * 40)[0 if index % 10 else 1 + index % 2]
    items = [Item(action="file:/etc/nginx/nginx.conf", status="held", severity="reload",
                  summary="content changed", path="/etc/nginx/nginx.conf",
                  reason="severity reload above the ceiling none")] if result == "held" else []
    report = FleetReport(
        node=node, time=now - timedelta(seconds=index % 3600), duration_s=0.4,
        mode="change", result=result, exit_code=0, ceiling="reload",
        reconciler_version="0.1.0",
        config=ConfigRef(commit=commit, subject=f"commit {commit[0]}", time=now),
        source=SourceInfo(branch="main", tip=ConfigRef(commit="a" * 40, time=now),
                          remote="ssh://git.example.org/fleet.git"),
        counts=ReportCounts(in_sync=120, held=len(items)), items=items,
    )  # fmt: skip
    return report.model_dump_json().encode()


def make_reports(path: Path, count: int) -> None:
    """`count` report refs written by one `git fast-import`."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    now = datetime.now(UTC)
    stream = bytearray()
    for index in range(count):
        data = report_json(index, now)
        node = json.loads(data)["node"]
        message = f"{json.loads(data)['result']} at aaaaaaaaaaaa\n".encode()
        stream += (f"commit refs/reports/{node}\n"
                   f"committer reconciler <reconciler@{node}> 1700000000 +0000\n"
                   f"data {len(message)}\n").encode() + message
        stream += f"M 100644 inline report.json\ndata {len(data)}\n".encode() + data + b"\n"
    subprocess.run(["git", "--git-dir", str(path), "fast-import", "--quiet"],
                   input=bytes(stream), check=True)


def timed(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def line(name: str, times: list[float], unit: float = 1.0, suffix: str = "s") -> None:
    print(f"{name:58} best {min(times) * unit:8.3f} {suffix}   median "
          f"{statistics.median(times) * unit:8.3f} {suffix}")


def bench_page(reports: Path, runs: int) -> None:
    port = free_port()
    server = subprocess.Popen([RECONCILER, "fleet", "serve", "--reports", str(reports),
                               "--listen", f"127.0.0.1:{port}", "--refresh", "3600"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.perf_counter()
        wait_for_port(port, timeout=120)
        print(f"{'serve: first read until listening':58} {time.perf_counter() - started:8.3f} s")
        for path in ("/", "/api/status", "/nodes?state=held"):
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
                    response.read()
                times.append(time.perf_counter() - started)
            line(f"GET {path}", times)
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_publish(base: Path, runs: int) -> None:
    origin = config_origin(base, {"fleet.xml": fleet_xml(web=2, cache=1), **CLASSES})
    reports = bare(base / "published.git")
    plain = FleetNode(base / "plain", "web-01.shop.c1.t", origin.url, f"file://{reports}",
                      with_key=False)
    signed = FleetNode(base / "signed", "web-01.shop.c1.t", origin.url, f"file://{reports}")
    plain.run()
    signed.run()
    wait_published([signed])
    without: list[float] = []
    with_key: list[float] = []
    for index in range(runs):
        for node, times in ((plain, without), (signed, with_key)):
            # A hand edit each time: the run repairs it, so each run is news to publish.
            node.root.joinpath("etc/web.conf").write_text(f"edited by hand {index}\n")
            started = time.perf_counter()
            node.run()
            times.append(time.perf_counter() - started)
    line("run repairing a hand edit, without publishing", without, 1000, "ms")
    line("the same, publishing it (queue + start the pusher)", with_key, 1000, "ms")
    report = signed.run()
    news, quiet = [], []
    for index in range(runs):
        changed = report.model_copy(update={"counts": report.counts.model_copy(
            update={"in_sync": index + 1000})})
        started = time.perf_counter()
        assert publish.after_run(signed.cfg, changed).pusher
        news.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert not publish.after_run(signed.cfg, changed).queued
        quiet.append(time.perf_counter() - started)
    line("after_run with news: queue + start the pusher", news, 1000, "ms")
    line("after_run without news", quiet, 1000, "ms")
    wait_published([signed])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as temp:
        base = Path(temp)
        os.environ["XDG_CACHE_HOME"] = str(base / "cache")
        reports = base / "reports.git"
        started = time.perf_counter()
        make_reports(reports, args.nodes)
        print(f"{f'wrote {args.nodes} report refs (fast-import)':58} "
              f"{time.perf_counter() - started:8.3f} s")
        subprocess.run([RECONCILER, "--version"], check=True, stdout=subprocess.DEVNULL)
        line(f"fleet status over {args.nodes} refs (whole process)",
             timed([RECONCILER, "fleet", "status", "--reports", str(reports)], args.runs))
        line(f"fleet status --format json over {args.nodes} refs",
             timed([RECONCILER, "fleet", "status", "--format", "json", "--reports",
                    str(reports)], args.runs))
        bench_page(reports, args.runs)
        bench_publish(base / "publish", max(args.runs, 10))


if __name__ == "__main__":
    main()
