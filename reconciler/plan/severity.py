"""An action's effective severity: its own, raised by what its notify edges trigger. A
module of its own, so that the review, which shows every change's severity, loads none
of the actions' engine (plan/build.py uses it too)."""

from __future__ import annotations

from reconciler.compile.nodeconfig import Action, CommandAction, NodeConfig, Severity

VERB_SEVERITY = {"reload": Severity.RELOAD, "restart": Severity.RESTART}


def effective_severity(action: Action, node: NodeConfig, own: Severity | None = None,
                       starting: frozenset[str] = frozenset()) -> Severity:
    """An action's severity (or `own` instead), raised by whatever its notify edges would
    trigger. Reloading or restarting a service in `starting` (not running yet: this run
    starts it with the new files) interrupts nothing."""
    severity = action.severity if own is None else own
    for notify in action.notify:
        if notify.verb == "run":
            target = node.action(notify.target)
            if isinstance(target, CommandAction):
                severity = max(severity, target.severity)
        elif notify.target not in starting:
            severity = max(severity, VERB_SEVERITY[notify.verb])
    return Severity(severity)
