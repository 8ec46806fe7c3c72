"""What the fleet's reports add up to: the one screen a person reads in five seconds.

Pure functions over the entries read.py found and a clock: each node gets one state
(its last result, or `silent` when its last report is older than the stale limit, or
`unreadable`), then nodes are counted per state, per config commit, per cluster and
class, and the exceptions are listed: silent nodes, refused commits, pinned nodes and
nodes behind their branch. `--format json` and the web page use these same models.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from reconciler.compile import names
from reconciler.fleet.read import Entry

# Worst first: the colour of a group of nodes is the worst state among them.
STATES = ("failed", "reverted", "refused", "unreadable", "interrupted", "silent", "held", "drift",
          "pending", "changed", "in-sync")
ALIASES = {"stale": "silent"}


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class NodeRow(View):
    """One node in a list: its state and what it runs."""

    node: str
    state: str
    result: str | None
    cls: str
    product: str
    cluster: str
    commit: str | None
    subject: str | None
    time: datetime | None
    age_s: float | None
    mode: str | None
    held: int = 0
    failed: int = 0
    drift: int = 0
    pinned: bool = False
    behind: str | None = None  # why the node enforces an older commit than its tip
    rollout: str | None = None  # waiting for earlier waves of a rollout, or halted
    problem: str | None = None  # why the report could not be read


class CommitGroup(View):
    """A config commit and how many nodes run it."""

    commit: str | None
    subject: str | None
    time: datetime | None
    nodes: int


class Cell(View):
    """Nodes of one class in one cluster: their count, states and worst state."""

    cluster: str
    cls: str
    nodes: int
    worst: str
    states: dict[str, int]


class RefusedCommit(View):
    """A config commit some nodes refused, why, and which nodes."""

    commit: str
    subject: str | None
    reason: str | None
    nodes: list[str]


class Spread(View):
    """How far the newest config commit has reached."""

    commit: str
    subject: str | None
    time: datetime | None
    nodes: int
    total: int


class FleetStatus(View):
    """The whole summary (`reconciler fleet status --format json`, the page's front)."""

    now: datetime
    stale_after_s: float
    total: int
    by_state: dict[str, int]
    newest: Spread | None
    commits: list[CommitGroup]
    clusters: list[str]
    classes: list[str]
    grid: list[Cell]
    by_product: dict[str, dict[str, int]]
    silent: list[NodeRow]
    refused: list[RefusedCommit]
    pinned: list[NodeRow]
    behind: list[NodeRow]
    rollout: list[NodeRow]
    unreadable: list[NodeRow]
    warnings: list[str] = []


def _parts(node: str) -> tuple[str, str, str]:
    try:
        parsed = names.parse(node)
    except ValueError:
        return "?", "?", "?"
    return parsed.cls, parsed.product, parsed.cluster


def row(entry: Entry, now: datetime, stale: timedelta) -> NodeRow:
    """`entry` as a list row, with its state at `now`."""
    cls, product, cluster = _parts(entry.node)
    report = entry.report
    if report is None:
        return NodeRow(node=entry.node, state="unreadable", result=None, cls=cls,
                       product=product, cluster=cluster, commit=None, subject=None,
                       time=None, age_s=None, mode=None, problem=entry.problem)
    age = now - report.time
    counts = report.counts
    # A refused run applied nothing: the commit it names is the one it refused.
    runs = None if report.result == "refused" else report.config
    return NodeRow(
        node=entry.node, state="silent" if age > stale else report.result,
        result=report.result, cls=cls, product=product, cluster=cluster,
        commit=runs.commit if runs else None, subject=runs.subject if runs else None,
        time=report.time,
        age_s=age.total_seconds(), mode=report.mode, held=counts.held, failed=counts.failed,
        drift=counts.pending + counts.drift, pinned=report.source.pinned,
        behind=report.source.stale, rollout=report.source.rollout,
    )  # fmt: skip


def worst(states: Iterable[str]) -> str:
    present = set(states)
    return next((s for s in STATES if s in present), "in-sync")


def summarize(entries: Sequence[Entry], now: datetime, stale: timedelta,
              warnings: Sequence[str] = ()) -> FleetStatus:
    """The fleet summary of `entries` at `now`; a node is silent after `stale`."""
    rows = [row(e, now, stale) for e in entries]
    by_state = {s: 0 for s in STATES} | Counter(r.state for r in rows)
    commits: dict[str | None, list[NodeRow]] = defaultdict(list)
    times: dict[str, tuple[datetime | None, str | None]] = {}
    refused: dict[str, tuple[str | None, str | None, list[str]]] = {}
    for entry, node_row in zip(entries, rows, strict=True):
        commits[node_row.commit].append(node_row)
        report = entry.report
        if report is None:
            continue
        for ref in (report.config, report.source.tip):
            if ref is not None and ref.commit is not None:
                known = times.get(ref.commit, (None, None))
                times[ref.commit] = (ref.time or known[0], ref.subject or known[1])
        gone = report.source.refused
        if gone is not None and gone.commit is not None:
            refused.setdefault(gone.commit, (gone.subject, report.source.refused_reason, []))[
                2].append(entry.node)
    groups = [CommitGroup(commit=c, subject=times.get(c, (None, None))[1] if c else None,
                          time=times.get(c, (None, None))[0] if c else None, nodes=len(r))
              for c, r in commits.items()]
    groups.sort(key=lambda g: (g.time is not None, g.time or now, g.nodes), reverse=True)
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    products: dict[str, Counter[str]] = defaultdict(Counter)
    for node_row in rows:
        cells[(node_row.cluster, node_row.cls)].append(node_row.state)
        products[node_row.product][node_row.state] += 1
    return FleetStatus(
        now=now, stale_after_s=stale.total_seconds(), total=len(rows), by_state=by_state,
        newest=_spread(times, commits, len(rows)), commits=groups,
        clusters=sorted({c for c, _ in cells}), classes=sorted({k for _, k in cells}),
        grid=[Cell(cluster=c, cls=k, nodes=len(s), worst=worst(s), states=dict(Counter(s)))
              for (c, k), s in sorted(cells.items())],
        by_product={p: dict(c) for p, c in sorted(products.items())},
        silent=sorted((r for r in rows if r.state == "silent"), key=lambda r: r.age_s or 0.0,
                      reverse=True),
        refused=[RefusedCommit(commit=c, subject=s, reason=why, nodes=n)
                 for c, (s, why, n) in sorted(refused.items(), key=lambda i: -len(i[1][2]))],
        pinned=[r for r in rows if r.pinned],
        behind=[r for r in rows if r.behind and not r.pinned],
        rollout=[r for r in rows if r.rollout],
        unreadable=[r for r in rows if r.state == "unreadable"],
        warnings=list(warnings),
    )  # fmt: skip


def _spread(times: dict[str, tuple[datetime | None, str | None]],
            commits: dict[str | None, list[NodeRow]], total: int) -> Spread | None:
    """The newest commit any node runs or has seen, and how many nodes run it."""
    dated = [(when, sha) for sha, (when, _) in times.items() if when is not None]
    if not dated:
        return None
    when, sha = max(dated)
    return Spread(commit=sha, subject=times[sha][1], time=when,
                  nodes=len(commits.get(sha, [])), total=total)


def select(rows: Iterable[NodeRow], state: str | None = None, cls: str | None = None,
           product: str | None = None, cluster: str | None = None,
           commit: str | None = None) -> list[NodeRow]:
    """The rows matching every filter given; `commit` matches a prefix of the id."""
    wanted = ALIASES.get(state, state) if state else None
    return [r for r in rows
            if (wanted is None or r.state == wanted) and (cls is None or r.cls == cls)
            and (product is None or r.product == product)
            and (cluster is None or r.cluster == cluster)
            and (commit is None or (r.commit or "").startswith(commit))]
