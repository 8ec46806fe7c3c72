"""The text that actions other than files put on a node, as a reviewer reads it in a plan:
a block's lines, a user's keys, an APT source's .sources and preferences files — each a
unified diff between the two revisions, like a rendered file."""

from __future__ import annotations

from reconciler.compile.edits import (
    apt_preferences_file,
    apt_sources_file,
    preferences_text,
    sources_text,
)
from reconciler.compile.nodeconfig import (
    Action,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
    NodeConfig,
)
from reconciler.diff import unified_diff
from reconciler.plan.severity import effective_severity
from reconciler.review.model import FileChange, severity_word

# What comparing two nodes' actions gave, once per pair of sets of actions (every node
# of a class has the same action objects): keyed by their ids, kept alive by the entry.
_cache: dict[tuple[tuple[int, ...] | None, tuple[int, ...]],
             tuple[object, object, tuple[FileChange, ...]]] = {}


def _texts(action: Action) -> dict[tuple[str, str], str]:
    """(path, what it is) → the text the action puts there."""
    match action:
        case BlockAction() if action.ensure == "present":
            return {(action.path, f"block {action.name}"): action.content}
        case AuthorizedKeysAction():
            where = action.path or f"~{action.user}/.ssh/authorized_keys"
            what = "keys (whole file)" if action.exclusive else "keys (managed block)"
            return {(where, what): "".join(f"{key}\n" for key in action.keys)}
        case AptSourceAction() if action.ensure == "present":
            found = {(apt_sources_file(action), "APT source"): sources_text(action)}
            if action.pins:
                found[(apt_preferences_file(action), "APT pins")] = preferences_text(action)
            return found
    return {}


def content_changes(base: NodeConfig | None, head: NodeConfig) -> tuple[FileChange, ...]:
    """Texts of blocks, keys and APT sources that differ between two compiled nodes."""
    key = (tuple(map(id, base.actions)) if base is not None else None,
           tuple(map(id, head.actions)))
    cached = _cache.get(key)
    if cached is not None:
        return cached[2]
    old: dict[tuple[str, str], tuple[str, str]] = {}
    for action in base.actions if base is not None else ():
        old.update({where: (action.id, text) for where, text in _texts(action).items()})
    changes = []
    for action in head.actions:
        for (path, what), text in sorted(_texts(action).items()):
            before = old.get((path, what))
            if before is not None and before[1] == text:
                continue
            previous = before[1].encode() if before is not None else None
            changes.append(FileChange(
                path=path, action=action.id, status="changed" if before else "new",
                severity=severity_word(effective_severity(action, head)), note=what,
                diff=unified_diff(previous, text.encode(),
                                  "/dev/null" if before is None else f"a/{path.lstrip('/')}",
                                  f"b/{path.lstrip('/')}")))
    result = tuple(changes)
    _cache[key] = (base.actions if base else None, head.actions, result)
    return result


def clear() -> None:
    """Forget cached comparisons (a worker starting on new revisions)."""
    _cache.clear()
