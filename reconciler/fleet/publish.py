"""After a run: queue its report when it has news (or a heartbeat is due) and start the
background pusher. The one call a run makes into the fleet package.

Publishing never changes a run: it happens after the run is recorded, it catches
every error it meets (remembered in `reports/error`), and what is slow (signing,
pushing over the network) happens in a detached process. Here it costs a JSON
document, one `git log` for commit subjects and times, two small files and a fork.

News is a report whose fingerprint (build.py) differs from the last one queued; a run
that finds what the previous one found is published again only as a heartbeat, once
`report-interval` has passed, so a node that stops reporting shows as silent. A
drift-watch run that checked a few actions is published only when it found something.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.agent.settings import AgentConfig
from reconciler.fleet.push import OUTBOX, queued, read_json, read_pushed, write_json
from reconciler.git import Git
from reconciler.record.report import RunReport
from reconciler.source.state import SourceState
from reconciler.statedir import StateDir

if TYPE_CHECKING:
    from reconciler.fleet import build

REPORTS = "reports"  # inside the state directory
PUBLISHED = "published.json"
ERROR = "error"


@dataclass(frozen=True)
class Target:
    """Where and how a node publishes, from its agent settings."""

    urls: tuple[str, ...]  # the reports URL, then its mirrors
    key: Path
    interval: float
    timeout: float
    reports_dir: Path

    @classmethod
    def of(cls, cfg: AgentConfig) -> Target:
        if cfg.reports is None:
            urls = (cfg.remote, *cfg.mirrors)
        else:
            urls = (cfg.reports, *(cfg.report_mirrors or ()))
        return cls(urls, cfg.signing_key, float(cfg.report_interval), cfg.fetch_timeout,
                   Path(cfg.state_dir) / REPORTS)

    @property
    def deadline(self) -> int:
        """Seconds after which a pusher ends itself: every URL timing out, twice (it may
        wait for the pusher before it), plus time to sign a rotated chain."""
        return int(self.timeout * len(self.urls) * 2 + 120)


@dataclass(frozen=True)
class Publication:
    """What `after_run` did, for tests, benchmarks and logs."""

    queued: bool = False
    heartbeat: bool = False
    pusher: bool = False
    skipped: str | None = None


def after_run(cfg: AgentConfig, report: RunReport, partial: bool = False,
              now: datetime | None = None) -> Publication:
    """Queue `report` for the fleet if it is news or a heartbeat is due, then start the
    pusher when anything waits to be pushed. Never raises."""
    target = Target.of(cfg)
    try:
        return _publish(cfg, target, report, partial, now or datetime.now(UTC))
    except Exception as exc:
        _remember_error(target, f"{type(exc).__name__}: {exc}")
        return Publication(skipped=f"error: {exc}")


def _publish(cfg: AgentConfig, target: Target, report: RunReport, partial: bool,
             now: datetime) -> Publication:
    if not target.key.is_file():
        return Publication(skipped=f"no signing key at {target.key} (reconciler fleet keygen)")
    # A node that does not publish (no key) never builds the published report's models.
    from reconciler.fleet import build

    last = read_json(target.reports_dir / PUBLISHED)
    # Whether there is news does not depend on commit times: they are looked up (one git
    # process) only for a report that goes out.
    fingerprint = build.fingerprint(build.build(report, _refusal(cfg), partial=partial))
    news = fingerprint != last.get("fingerprint")
    if partial and report.result == "in-sync":
        news = False
    last_time = last.get("time")
    since = now.timestamp() - (last_time if isinstance(last_time, int | float) else 0.0)
    due = since >= target.interval
    publication = Publication()
    if news or due:
        doc = build.build(report, _context(cfg, report), partial=partial, heartbeat=not news)
        _enqueue(target.reports_dir, doc.model_dump_json().encode(), build.commit_message(doc))
        write_json(target.reports_dir / PUBLISHED,
                    {"fingerprint": fingerprint, "time": now.timestamp()})
        publication = Publication(queued=True, heartbeat=not news)
    if queued(target.reports_dir) or _behind(target):
        start_pusher(target, cfg.node)
        publication = Publication(publication.queued, publication.heartbeat, pusher=True)
    return publication


def _refusal(cfg: AgentConfig) -> build.Context:
    """The configured remote, and the tip this node refused, if any."""
    from reconciler.fleet import build

    try:
        memory = SourceState.load(StateDir(cfg.state_dir).source_state)
    except Exception:  # an unreadable state file only loses detail
        memory = SourceState()
    refused = memory.refused
    good = memory.last_good
    return build.Context(remote=cfg.remote, refused_commit=refused.commit if refused else None,
                         refused_reason=refused.reason if refused else None,
                         good_since=(good, memory.last_good_at)
                         if good and memory.last_good_at else None)


def _context(cfg: AgentConfig, report: RunReport) -> build.Context:
    """`_refusal`, with the subjects and commit times of the commits the report names."""
    from reconciler.fleet import build

    ctx = _refusal(cfg)
    cache = StateDir(cfg.state_dir).source_cache
    commits: dict[str, tuple[datetime | None, str | None]] = {}
    tip = report.source.tip if report.source else None
    wanted = {sha for sha in (report.config_commit, tip, ctx.refused_commit) if sha is not None}
    if wanted and cache.is_dir():
        done = Git(cache).run("log", "--no-walk=unsorted", "--format=%H%x1f%cI%x1f%s",
                              *sorted(wanted), "--", timeout=10)
        for line in done.out.splitlines() if done.ok else []:
            sha, when, subject = [*line.split("\x1f"), "", ""][:3]
            commits[sha] = (datetime.fromisoformat(when) if when else None, subject or None)
    return build.Context(ctx.remote, commits, ctx.refused_commit, ctx.refused_reason,
                         ctx.good_since)


def _behind(target: Target) -> bool:
    """Whether the local chain holds a report the reports URL has not accepted yet."""
    pushed = read_pushed(target.reports_dir)
    urls = pushed.get("urls") if isinstance(pushed.get("urls"), dict) else {}
    assert isinstance(urls, dict)
    return pushed.get("tip") is not None and urls.get(target.urls[0]) != pushed.get("tip")


def _enqueue(reports_dir: Path, report: bytes, message: str) -> None:
    """Put a report in the outbox: its message first, then the report, renamed in."""
    outbox = reports_dir / OUTBOX
    outbox.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}"
    (outbox / f"{name}.msg").write_text(message)
    temporary = outbox / f".{name}.tmp"
    temporary.write_bytes(report)
    os.replace(temporary, outbox / f"{name}.json")


def start_pusher(target: Target, node: str) -> None:
    """Start `python -m reconciler.fleet.pusher` detached: its own session, no terminal,
    not waited for."""
    subprocess.Popen(
        [sys.executable, "-m", "reconciler.fleet.pusher",
         "--reports-dir", str(target.reports_dir), "--node", node,
         "--key", str(target.key.absolute()), "--timeout", str(target.timeout),
         "--deadline", str(target.deadline), *target.urls],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )  # fmt: skip


def _remember_error(target: Target, message: str) -> None:
    with contextlib.suppress(OSError):
        write_json(target.reports_dir / ERROR, {"time": time.time(), "error": message})
