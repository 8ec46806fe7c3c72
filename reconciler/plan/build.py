"""Plan: what differs between desired and live state, as a list of values.

Each action is asked what differs (lazily probing the live system through the System
interface); the answers are `Change`s carrying their effective severity, a diff where
content differs, and whether they are held. Tests assert plans, audit prints them,
apply consumes them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from reconciler.actions import (
    HOST_ONLY,
    notification,
    orphan_changes,
    probe_action,
    refresh_lists,
)
from reconciler.compile.nodeconfig import (
    Action,
    CommandAction,
    NodeConfig,
    ServiceAction,
    Severity,
)
from reconciler.plan.change import AboveCeiling, Change, Drift, KeptEdit
from reconciler.plan.probe import ActionPlan, Context
from reconciler.plan.severity import VERB_SEVERITY, effective_severity

KIND_ORDER = {
    "apt-source": 0,
    "mount": 1,
    "group": 2,
    "user": 3,
    "package": 4,
    "directory": 5,
    "file": 6,
    "tree": 6,
    "symlink": 6,
    "line": 6,
    "block": 6,
    "authorized-keys": 6,
    "command": 7,
    "service": 8,
}


@dataclass
class Plan:
    """Every action of a node in apply order, plus orphans."""

    node: NodeConfig
    ceiling: Severity
    actions: list[ActionPlan]
    orphans: list[Change] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # records of vanished orphans
    interrupted: bool = False  # a stop request cut probing short: the rest is unknown

    def changes(self) -> list[Change]:
        return [c for a in self.actions for c in a.changes] + self.orphans


def order(node: NodeConfig) -> list[Action]:
    """Apply order: by kind (APT sources, mounts, groups, users, packages, directories,
    files and edits of files, commands, services), refined by `requires` and `notify`
    edges; declaration order breaks ties (Kahn's algorithm)."""
    actions = list(node.actions)
    index = {a.id: i for i, a in enumerate(actions)}
    before: dict[str, set[str]] = {a.id: set() for a in actions}
    for action in actions:
        for ref in action.requires:
            before[action.id].add(ref)
        for notify in action.notify:
            before[notify.target].add(action.id)
    waiting = {aid: len(refs) for aid, refs in before.items()}
    after: dict[str, list[str]] = {a.id: [] for a in actions}
    for aid, refs in before.items():
        for ref in refs:
            after[ref].append(aid)
    ready = [(KIND_ORDER[a.kind], index[a.id], a.id) for a in actions if waiting[a.id] == 0]
    heapq.heapify(ready)
    result: list[Action] = []
    while ready:
        _, _, aid = heapq.heappop(ready)
        result.append(actions[index[aid]])
        for nxt in after[aid]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (KIND_ORDER[actions[index[nxt]].kind], index[nxt], nxt))
    return result


def build(ctx: Context, only: frozenset[str] | None = None) -> Plan:
    """Probe every action (or only the given ids and what they notify) against the live
    system and decide what is held. A partial plan leaves orphans alone; so does one a
    stop request cut short (between actions, or between the files of a tree)."""
    selected = None if only is None else _with_notified(ctx.node, only)
    plans: list[ActionPlan] = []
    interrupted = False
    actions = [a for a in order(ctx.node) if selected is None or a.id in selected]
    ctx.progress.start("checking", sum(_steps(ctx, a) for a in actions))
    for action in actions:
        plans.append(probe_action(ctx, action))
        if action.kind not in FILE_KINDS:  # a file action counts its files as it probes
            ctx.progress.advance()
        if ctx.should_stop():
            interrupted = True
            break
    by_id = {plan.action.id: plan for plan in plans}
    probed = {plan.action.id: plan.changes for plan in plans}
    for plan in plans:
        plan.changes = _judged(ctx, plan.action, probed[plan.action.id], frozenset())
    if interrupted:
        return Plan(ctx.node, ctx.ceiling, plans, interrupted=True)
    # A service this run starts (its start not held) needs no reload or restart.
    starting = _starting(plans)
    for plan in plans:
        if any(n.target in starting for n in plan.action.notify):
            plan.changes = _judged(ctx, plan.action, probed[plan.action.id], starting)
    refresh_lists(ctx, plans)
    _add_notifications(ctx, plans, by_id, starting)
    if selected is not None:
        return Plan(ctx.node, ctx.ceiling, plans)
    orphans, forget = orphan_changes(ctx)
    return Plan(ctx.node, ctx.ceiling, plans, [_with_policy(ctx, c) for c in orphans], forget)


def _judged(ctx: Context, action: Action, changes: list[Change],
            starting: frozenset[str]) -> list[Change]:
    """An action's probed changes with their effective severity, held where policy says."""
    severity = effective_severity(action, ctx.node, starting=starting)
    quiet = effective_severity(action, ctx.node, Severity.NONE, starting)
    return [_with_policy(ctx, replace(c, severity=severity if c.interrupts else quiet))
            for c in changes]


def _starting(plans: list[ActionPlan]) -> frozenset[str]:
    """The services known not to run now whose start this run applies: their notified
    reload or restart is needless (they start with the new files) and interrupts nothing."""
    return frozenset(plan.action.id for plan in plans if plan.action.kind == "service"
                     and any(c.op == "start" and c.held is None for c in plan.changes))


FILE_KINDS = ("file", "tree")


def _steps(ctx: Context, action: Action) -> int:
    """How many progress steps probing `action` takes: one per file it renders, else one."""
    return len(ctx.rendered.get(action.id, [])) if action.kind in FILE_KINDS else 1


def _with_notified(node: NodeConfig, only: frozenset[str]) -> set[str]:
    """`only` plus every action its members notify, transitively."""
    selected = set(only)
    pending = list(only)
    by_id = {action.id: action for action in node.actions}  # `only` may name every one
    while pending:
        action = by_id.get(pending.pop())
        for notify in action.notify if action is not None else ():
            if notify.target not in selected:
                selected.add(notify.target)
                pending.append(notify.target)
    return selected


def _with_policy(ctx: Context, change: Change) -> Change:
    """Hold a change above the ceiling, or a hand edit under `local-edits=hold`."""
    if change.held:
        return change
    if ctx.window is not None and ctx.ceiling < change.severity <= ctx.window[0]:
        return replace(change, held=f"waiting for window {ctx.window[1]}")
    if change.severity > ctx.ceiling:
        return replace(
            change,
            held=AboveCeiling(f"severity {change.severity} is above the ceiling {ctx.ceiling}"),
        )
    if change.drift in (Drift.EDITED, Drift.BOTH) and ctx.node.policy.local_edits == "hold":
        commit = (change.last_commit or "?")[:12]
        return replace(
            change,
            held=KeptEdit(f"edited by hand since reconciler wrote it at {commit}; "
                          "policy local-edits=hold"),
        )
    return change


def _add_notifications(ctx: Context, plans: list[ActionPlan], by_id: dict[str, ActionPlan],
                       starting: frozenset[str]) -> None:
    """Give each notified action one change ('reload', 'restart' or 'run') naming its sources.

    A notification fires only from changes that will really be applied; restart wins over
    reload. Targets come after their sources in apply order.
    """
    wanted: dict[str, tuple[str, list[str]]] = {}
    for plan in plans:
        if not any(c.held is None for c in plan.changes):
            continue
        for notify in plan.action.notify:
            verb, sources = wanted.get(notify.target, (notify.verb, []))
            if notify.verb == "restart" or verb == "restart":
                verb = "restart" if notify.verb != "run" else verb
            wanted[notify.target] = (verb, [*sources, plan.action.id])
    for target, (verb, sources) in wanted.items():
        plan = by_id[target]
        notified = plan.action
        assert isinstance(notified, ServiceAction | CommandAction), "compile checks notify targets"
        severity = Severity.NONE if target in starting else \
            VERB_SEVERITY.get(verb, notified.severity)
        change = _with_policy(ctx, notification(
            notified, verb, f"{verb} (notified by {', '.join(sources)})", tuple(sources),
            severity))
        if not ctx.system.runs_host_commands and change.held is None:
            change = replace(change, held=HOST_ONLY)
        plan.changes.append(change)
