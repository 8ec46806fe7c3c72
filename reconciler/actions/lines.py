"""Line and block actions: one line, or a block between marker comments, in a file that
no other action owns (/etc/hosts, /etc/default/grub), with three-state drift."""

from __future__ import annotations

from reconciler.actions.fileedit import (
    EditPart,
    Part,
    PartKind,
    held_secret,
    kept_record,
    part_drift,
    read_text,
    text_digest,
)
from reconciler.actions.textedit import BlockEdit, LineEdit
from reconciler.compile.nodeconfig import BlockAction, LineAction
from reconciler.plan.probe import ActionPlan, Context


def probe(ctx: Context, action: LineAction | BlockAction) -> ActionPlan:
    """The part as the live file holds it against the declared one."""
    plan = ActionPlan(action)
    edit: LineEdit | BlockEdit
    if isinstance(action, LineAction):
        edit = LineEdit(action.line, action.match, action.ensure == "present")
        desired = action.line if action.ensure == "present" else None
    else:
        desired = action.content if action.ensure == "present" else None
        if desired and not desired.endswith("\n"):
            desired += "\n"
        edit = BlockEdit(action.name, action.comment, desired)
    before = read_text(ctx.system, action.path)
    part = Part(action.path, before, edit(before or ""), edit.found(before or ""), desired)
    kind: PartKind = "line" if isinstance(action, LineAction) else "block"
    if part.in_sync or (before is None and desired is None):
        if desired is not None:
            plan.in_sync[action.id] = kept_record(ctx, action.id, action.id, kind, action.path,
                                                  desired)
        return plan
    state, last = part_drift(ctx, action.id, part)
    plan.changes.append(EditPart(
        action=action, summary=_summary(action, part), path=action.path, diff=part.diff(),
        drift=state, last_commit=last, key=action.id, edit=edit, kind=kind,
        digest=None if desired is None else text_digest(ctx, desired),
        was_secret=held_secret(ctx, action.path)))
    return plan


def _summary(action: LineAction | BlockAction, part: Part) -> str:
    what = "line" if isinstance(action, LineAction) else f"block {action.name!r}"
    if part.desired is None:
        return f"remove {what}"
    if part.before is None:
        return f"create the file with {what}"
    if part.live is None:
        return f"add {what}"
    if isinstance(action, LineAction):
        return f"replace line {part.live!r}"
    return f"update {what}"
