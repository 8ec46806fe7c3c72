"""Review a change to the config repo: what it does to every node of the fleet.

`plan_fleet` compiles and renders every node at two revisions in forked worker
processes (one `Renderer` per revision per worker, so each template compiles once per
revision per worker) and compares them node by node. Workers send back only per-node
differences, never renders; the parent groups nodes by what their change is
(review/grouping.py), so a change shared by 240 proxies is shown once even where each
proxy's diff shows its own name.

A head that does not compile or render makes the plan invalid (exit 1, with the same
grouped `path:line` errors as `validate`). A base that does not load is reported and
nothing is compared; a base node that fails to render is compared on what did render,
with its problems attached to its group. Secrets never reach a diff: a changed
secret file reads "secret changed".
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reconciler.compile import names
from reconciler.compile.compiler import load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.compile.nodeconfig import Severity
from reconciler.errors import ConfigError, UsageError
from reconciler.facts.model import Facts
from reconciler.render.deps import INVENTORY
from reconciler.review import records
from reconciler.review.compare import NodeOutcome, compare_chunk, init_worker
from reconciler.review.grouping import Grouped, Member, group_members
from reconciler.review.incremental import Work, changed_paths, plan_work
from reconciler.review.model import (
    Count,
    Group,
    HeadProblem,
    PlanReport,
    max_severity,
)
from reconciler.review.names import compress_names, describe_scope, plural
from reconciler.review.records import NodeRecord, facts_key, records_dir
from reconciler.review.revisions import Revisions
from reconciler.review.workers import default_jobs, fan_out
from reconciler.secrets.plan import compare_secrets
from reconciler.source.snapshot import Snapshot


def _outcomes(
    base: Fleet | None, head: Fleet, node_names: list[str], jobs: int,
    progress: Callable[[int], None] | None, facts: Mapping[str, Facts] | None,
    work: Work | None, base_records: bool, changed: frozenset[str] | None,
    compiled: tuple[str, str] | None,
) -> Iterable[NodeOutcome]:
    """Every node's outcome, as workers finish (in order of completion)."""
    setup = (base, head, facts, work.nodes if work else None, base_records, changed, compiled)
    for _, size, outcomes in fan_out(node_names, jobs, init_worker, setup, compare_chunk):
        yield from outcomes
        if progress:
            progress(size)


def _paths(repo: str, commits: dict[str, Any]) -> tuple[set[str], bool] | None:
    """The repo paths that differ between the revisions, and whether links make paths
    alias (`changed_paths`); None when git cannot say."""
    if commits["base_commit"] is None or commits["head_commit"] is None:
        return None
    return changed_paths(repo, commits["base_commit"], commits["head_commit"])


def _incremental(
    where: Path | None, base: Fleet, head: Fleet, commits: dict[str, Any],
    facts: Mapping[str, Facts] | None, paths: Callable[[], tuple[set[str], bool] | None],
) -> tuple[dict[str, NodeRecord] | None, Work | None]:
    """The base's records and what the change touches, or (None, None) for a full plan."""
    known = records.load(where, commits["base_commit"], facts_key(facts))
    if known is None:
        return None, None
    found = paths()
    if found is None:
        return None, None
    work = plan_work(base, head, *found, known)
    return (known, work) if work is not None else (None, None)


def _changed(base: Fleet, head: Fleet, found: tuple[set[str], bool] | None
             ) -> frozenset[str] | None:
    """The repo paths that differ between the revisions, with the inventory when their
    nodes do; None when symlinks make paths alias (then no file is known unchanged)."""
    if found is None or found[1]:
        return None
    return frozenset(found[0] | ({INVENTORY} if set(base.nodes) != set(head.nodes) else set()))


def _load(head_snapshot: Snapshot, base_snapshot: Snapshot
          ) -> tuple[Fleet | None, Fleet | None, tuple[str, ...]]:
    """The head's fleet (None when it does not load), the base's (None when it does not
    load) and the base's problems."""
    try:
        head = load_fleet(head_snapshot)
    except ConfigError:
        return None, None, ()
    try:
        return head, load_fleet(base_snapshot), ()
    except ConfigError as exc:
        return head, None, tuple(str(p) for p in exc.problems)


def _compiled_templates(where: Path | None) -> tuple[str, str] | None:
    """The directories that keep the base's and the head's compiled templates between
    plans, beside the records `where` (a plan from the same base, or to the same head,
    compiles only what changed); None when there are no records or no place for them."""
    if where is None:
        return None
    kept = (str(where.parent / "plan-templates" / "base"),
            str(where.parent / "plan-templates" / "head"))
    try:
        for directory in kept:
            os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return kept


def _head_findings(
    snapshot: Snapshot, jobs: int, facts: Mapping[str, Facts] | None
) -> tuple[HeadProblem, ...]:
    """The head's problems exactly as `validate` groups and counts them."""
    from reconciler.review.validate import validate  # only a plan of an invalid head needs it

    result = validate(snapshot, jobs, facts)
    return tuple(HeadProblem(problem=str(f.problem), nodes=f.nodes) for f in result.findings)


def plan_fleet(
    repo: str,
    base_rev: str,
    head_rev: str,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    facts: Mapping[str, Facts] | None = None,
    only: Collection[str] | None = None,
    full: bool = False,
    keep_records: bool = True,
    reuse: bool = True,
    revisions: Revisions | None = None,
) -> PlanReport:
    """Compare every node of the fleet at `base_rev` and `head_rev` of `repo`, rendering
    with the `facts` nodes published (placeholders for the others).

    With `only`, just those nodes are planned, each group holding nodes whose changes are
    identical byte for byte (a node's exact diff). Unless `full`, only the nodes and files
    that the change touches are rendered, when the base's dependency records say which
    (review/incremental.py); `keep_records` reads and writes them in the repo's git
    directory. A node compiled at both revisions is rendered at the base only where its
    files' inputs differ from the head's (review/reuse.py); without `reuse`, everywhere
    (what the tests compare with). `progress(done, total)` is called as nodes finish.
    `revisions`: `base_rev` and `head_rev` already being opened (review/revisions.py).
    Raises ConfigError only when a revision cannot be opened at all (not a repo, unknown
    revision), UsageError for an `only` node at neither revision.
    """
    jobs = jobs or default_jobs()
    head_snapshot, base_snapshot = (revisions or Revisions(repo, base_rev, head_rev)).result()
    commits = {"base": base_rev, "head": head_rev, "base_commit": base_snapshot.revision,
               "head_commit": head_snapshot.revision}
    with ThreadPoolExecutor(1, thread_name_prefix="plan-git") as pool:
        # git says which paths differ, and where the records are, while the fleets load.
        differ = pool.submit(_paths, repo, commits)
        located = pool.submit(records_dir, repo) if keep_records and only is None else None
        head, base, base_problems = _load(head_snapshot, base_snapshot)
    if head is None:
        return _invalid(commits, _head_findings(head_snapshot, jobs, facts))
    planned = head.node_names()
    if only is not None:
        unknown = [name for name in only if name not in head.nodes
                   and (base is None or name not in base.nodes)]
        if unknown:
            raise UsageError.because(f"no node {', '.join(unknown)} at either revision")
        planned = [name for name in planned if name in only]
    where = located.result() if located is not None else None
    paths = differ.result
    known, work = _incremental(where, base, head, commits, facts, paths) \
        if not full and base is not None else (None, None)
    if work is not None and base is not None:
        planned = [name for name in planned if name not in base.nodes or name in work.nodes]
    base_records = work is None and where is not None \
        and not records.exists(where, base_snapshot.revision, facts_key(facts))
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, len(planned))

    members: list[Member] = []
    added: list[Member] = []
    invalid = False
    head_records: dict[str, NodeRecord] = {}
    old_records: dict[str, NodeRecord] = {}
    # Nodes rendered whole, in a full plan or an incremental one, render at the base
    # only what the head's files cannot stand for (review/reuse.py).
    changed = _changed(base, head, paths()) if reuse and base is not None else None
    for outcome in _outcomes(base, head, planned, jobs, advance, facts, work, base_records,
                             changed, _compiled_templates(where)):
        if outcome.record is not None:
            head_records[outcome.name] = outcome.record
        if outcome.base_record is not None:
            old_records[outcome.name] = outcome.base_record
        if outcome.head_problems:
            invalid = True
        elif outcome.added and outcome.diff is not None:
            added.append(Member(outcome.name, outcome.diff, outcome.identity))
        elif outcome.diff is not None and not outcome.diff.empty:
            members.append(Member(outcome.name, outcome.diff, outcome.identity))
    if invalid:
        return _invalid(commits, _head_findings(head_snapshot, jobs, facts))
    if where is not None:
        unchanged = {name: known[name] for name in head.nodes
                     if known and name in known and name not in head_records}
        records.save(where, head_snapshot.revision, facts_key(facts),
                     {**unchanged, **head_records})
        if base_records:
            records.save(where, base_snapshot.revision, facts_key(facts), old_records)
    removed = sorted(set(base.nodes) - set(head.nodes), key=names.parse) if base else []
    if only is not None:
        removed = [name for name in removed if name in only]
    members.sort(key=lambda m: names.parse(m.name))
    added.sort(key=lambda m: names.parse(m.name))
    groups = group_members(members, exact=only is not None)
    report = _report(commits, head, groups, [m.name for m in added], removed, base_problems,
                     only)
    report = report.model_copy(update={"incremental": work is not None,
                                       "rendered_nodes": len(planned)})
    if added:
        report = report.model_copy(update={"added_groups": tuple(_groups(
            head, group_members(added, exact=only is not None)))})
    secrets = compare_secrets(base, head)
    if not secrets:
        return report
    return report.model_copy(update={
        "secrets": secrets, "headline": f"{report.headline}; {plural(len(secrets), 'secret')} "
                                        f"changed"})


def _invalid(commits: dict[str, Any], problems: tuple[HeadProblem, ...]) -> PlanReport:
    return PlanReport(**commits, valid=False, head_problems=problems, total_nodes=0,
                      changed_nodes=0, severity="none", scope="",
                      headline=f"head {commits['head']} is invalid: "
                               f"{plural(len(problems), 'distinct problem')}")


def _groups(head: Fleet, found: list[Grouped]) -> list[Group]:
    """Groups for the report, the most severe and largest first."""
    clusters = sorted({d.name.cluster for d in head.nodes.values()})
    groups = [Group(nodes=g.nodes, patterns=tuple(compress_names(g.nodes)),
                    scope=describe_scope(g.nodes, clusters), severity=g.changes.severity,
                    changes=g.changes, marked=g.marked, varies=g.varies, digests=g.digests)
              for g in found]
    groups.sort(key=lambda g: (-Severity.parse(g.severity), -len(g.nodes),
                               names.parse(g.nodes[0])))
    return groups


def _report(
    commits: dict[str, Any], head: Fleet, found: list[Grouped], added: list[str],
    removed: list[str], base_problems: tuple[str, ...], only: Collection[str] | None,
) -> PlanReport:
    clusters = sorted({d.name.cluster for d in head.nodes.values()})
    groups = _groups(head, found)
    changed = [n for g in groups for n in g.nodes]
    changed_set = set(changed)
    total_by_class = Counter(d.name.cls for d in head.nodes.values())
    total_by_cluster = Counter(d.name.cluster for d in head.nodes.values())
    changed_by_class = Counter(names.parse(n).cls for n in changed)
    changed_by_cluster = Counter(names.parse(n).cluster for n in changed)
    by_severity: Counter[str] = Counter(g.severity for g in groups for _ in g.nodes)
    severity = max_severity(g.severity for g in groups)
    scope = describe_scope(changed, clusters)
    total = len(head.nodes)
    if base_problems:
        headline = (f"base {commits['base']} is invalid: {plural(total, 'node')} "
                    "could not be compared")
    elif changed_set:
        headline = f"{len(changed_set)} of {total} nodes change ({scope}), severity {severity}"
    else:
        headline = f"no node changes ({plural(total, 'node')})"
    extra = [f"{plural(len(added), 'node')} added" if added else "",
             f"{plural(len(removed), 'node')} removed" if removed else "",
             f"only {', '.join(sorted(only, key=names.parse))} planned" if only else ""]
    if any(extra):
        headline += "; " + ", ".join(e for e in extra if e)
    return PlanReport(
        **commits, valid=True, base_problems=base_problems, headline=headline, total_nodes=total,
        changed_nodes=len(changed_set), severity=severity, scope=scope if changed_set else "",
        by_class=tuple(Count(name=c, changed=changed_by_class[c], total=total_by_class[c])
                       for c in sorted(total_by_class)),
        by_cluster=tuple(Count(name=c, changed=changed_by_cluster[c], total=total_by_cluster[c])
                         for c in sorted(total_by_cluster)),
        by_severity={str(s): by_severity[str(s)] for s in reversed(Severity)
                     if by_severity[str(s)]},
        added_nodes=tuple(sorted(added, key=names.parse)), removed_nodes=tuple(removed),
        groups=tuple(groups),
    )
