"""Read the fleet's reports from one or more reports repositories.

Every node's last report is read with one `git for-each-ref refs/reports/` and one
`git cat-file --batch` per repository, never a process per node. A local path (or
`file://` URL) is read in place; any other URL is first fetched (`refs/reports/*`
only, bounded by a timeout) into a cache under `~/.cache/reconciler/reports/`, and
when the fetch fails the cache is read with a warning saying so.

With several repositories (per-cluster report repos, or a repo and its mirror) the
newest report of each node wins.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from reconciler.fleet.chain import REF_PREFIX, REPORT_FILE, init_bare
from reconciler.fleet.model import MAX_REPORT_BYTES, FleetReport
from reconciler.git import Git
from reconciler.source.cache import redact


@dataclass(frozen=True)
class Entry:
    """One node's last report as found in one repository (`report` None: unreadable)."""

    node: str
    commit: str
    git_dir: Path
    location: str
    report: FleetReport | None
    problem: str | None = None


@dataclass
class Reading:
    """Every node's newest report, what went wrong reading, and a token that changes
    whenever any report ref moved (the web page reloads on it). `repos` keeps each
    repository's entries by its listing's digest, so a later read re-reads only the
    repositories whose refs moved."""

    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    generation: str = ""
    repos: dict[str, tuple[str, list[Entry]]] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryItem:
    """One report of a node's history, from its commit message alone."""

    commit: str
    time: datetime
    summary: str
    result: str
    config_commit: str | None


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reconciler" / "reports"


def is_local(spec: str) -> bool:
    return spec.startswith("file://") or ("://" not in spec and ":" not in spec.split("/")[0])


def locate(spec: str, cache: Path, timeout: float) -> tuple[Path | None, list[str]]:
    """The git directory holding `spec`'s reports (fetched first for a URL), and warnings."""
    if is_local(spec):
        path = spec.removeprefix("file://")
        done = Git(path).run("rev-parse", "--absolute-git-dir")
        if not done.ok:
            return None, [f"{path}: not a git repository ({done.tail()})"]
        return Path(done.out.strip()), []
    where = redact(spec)
    mirror = cache / (hashlib.sha256(spec.encode()).hexdigest()[:16] + ".git")
    try:
        init_bare(mirror)
    except OSError as exc:
        return None, [f"{where}: cannot create the cache {mirror}: {exc}"]
    done = Git(mirror).run("fetch", "--prune", "--no-tags", "--quiet", "--", spec,
                           f"+{REF_PREFIX}*:{REF_PREFIX}*", timeout=timeout, network=True)
    if done.ok:
        return mirror, []
    return mirror, [f"{where}: fetch failed ({redact(done.tail())}); showing the reports "
                    f"fetched before, from {mirror}"]


def listing(git_dir: Path) -> list[tuple[str, str]]:
    """(commit, node) of every report ref, from one `git for-each-ref`."""
    done = Git(git_dir).run("for-each-ref", "--format=%(objectname) %(refname)", REF_PREFIX)
    pairs = []
    for line in done.out.splitlines() if done.ok else []:
        sha, _, ref = line.partition(" ")
        pairs.append((sha, ref.removeprefix(REF_PREFIX)))
    return pairs


def _blobs(git_dir: Path, commits: Sequence[str]) -> list[bytes | str]:
    """`report.json` of each commit (bytes), or why not (str), from one `cat-file --batch`."""
    request = "".join(f"{sha}:{REPORT_FILE}\n" for sha in commits).encode()
    out = Git(git_dir).run("cat-file", "--batch", stdin=request).stdout
    found: list[bytes | str] = []
    at = 0
    for _ in commits:
        end = out.find(b"\n", at)
        if end < 0:
            found.append("git cat-file stopped early")
            continue
        header = out[at:end].split()
        at = end + 1
        if len(header) != 3:
            found.append(f"no {REPORT_FILE} in the report commit")
            continue
        size = int(header[2])
        body = out[at : at + size]
        at += size + 1
        if header[1] != b"blob":
            found.append(f"{REPORT_FILE} is not a file")
        elif size > MAX_REPORT_BYTES:
            found.append(f"{REPORT_FILE} is {size} bytes, over the {MAX_REPORT_BYTES} cap")
        else:
            found.append(body)
    return found


def read_repo(git_dir: Path, location: str,
              known: tuple[str, list[Entry]] | None = None) -> tuple[str, list[Entry]]:
    """The listing's digest and every report in one repository (`known` is reused when
    the digest has not changed)."""
    pairs = listing(git_dir)
    digest = hashlib.sha256("".join(f"{s} {n}\n" for s, n in pairs).encode()).hexdigest()
    if known is not None and known[0] == digest:
        return known
    entries = []
    for (sha, node), blob in zip(pairs, _blobs(git_dir, [s for s, _ in pairs]), strict=True):
        report: FleetReport | None = None
        problem: str | None = blob if isinstance(blob, str) else None
        if isinstance(blob, bytes):
            try:
                report = FleetReport.model_validate_json(blob)
            except ValidationError as exc:
                problem = f"unreadable report: {exc.error_count()} problem(s), first: " \
                          f"{exc.errors()[0]['msg']}"
            if report is not None and report.node != node:
                problem = f"the report is for {report.node!r}, not for its ref's node"
                report = None
        entries.append(Entry(node, sha, git_dir, location, report, problem))
    return digest, entries


def read(specs: Sequence[str], cache: Path | None = None, timeout: float = 60.0,
         previous: Reading | None = None) -> Reading:
    """The newest report of every node across `specs` (paths or URLs); repositories
    unchanged since `previous` are not read again."""
    reading = Reading()
    newest: dict[str, Entry] = {}
    digests = []
    for spec in specs:
        git_dir, warnings = locate(spec, cache or default_cache(), timeout)
        reading.warnings.extend(warnings)
        if git_dir is None:
            continue
        before = previous.repos.get(spec) if previous is not None else None
        digest, entries = read_repo(git_dir, redact(spec), before)
        reading.repos[spec] = (digest, entries)
        digests.append(digest)
        for entry in entries:
            known = newest.get(entry.node)
            if known is None or _newer(entry, known):
                newest[entry.node] = entry
    reading.entries = sorted(newest.values(), key=lambda e: e.node)
    reading.generation = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
    return reading


def _newer(entry: Entry, known: Entry) -> bool:
    if known.report is None:
        return True
    return entry.report is not None and entry.report.time > known.report.time


def history(git_dir: Path, node: str, limit: int = 100) -> list[HistoryItem]:
    """A node's reports, newest first, from its report ref's `git log`."""
    done = Git(git_dir).run("log", f"--max-count={limit}",
               "--format=%H%x1f%cI%x1f%s%x1f%(trailers:key=Result,valueonly,separator=)"
               "%x1f%(trailers:key=Config-Commit,valueonly,separator=)%x1e",
               REF_PREFIX + node, "--")
    items = []
    for record in done.out.split("\x1e") if done.ok else []:
        fields = record.strip("\n").split("\x1f")
        if len(fields) != 5:
            continue
        sha, when, summary, result, commit = (f.strip() for f in fields)
        items.append(HistoryItem(sha, datetime.fromisoformat(when), summary, result,
                                 None if commit in ("", "none") else commit))
    return items


def report_at(git_dir: Path, commit: str) -> FleetReport | None:
    """The report of one commit of a node's history (None when unreadable)."""
    done = Git(git_dir).run("cat-file", "blob", f"{commit}:{REPORT_FILE}")
    if not done.ok or len(done.stdout) > MAX_REPORT_BYTES:
        return None
    try:
        return FleetReport.model_validate_json(done.stdout)
    except ValidationError:
        return None
