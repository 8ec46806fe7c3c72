"""The desired state a settled run converged to, read back so that a run that finds a few
paths drifted plans and applies only them, without compiling or rendering.

`quiet.py` keeps it beside the quiet record and under the same key (`STATE/desired.pack`):
the node's compiled configuration (without its variables, which only rendering reads)
and the rendered content of every managed file. A run with that key could only compile
and render the same again, so the pack stands in for both. Each file's content is
checked against the quiet record's hash of it; a pack that does not match is not used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from reconciler import quiet
from reconciler.atomicfile import read_own
from reconciler.compile.nodeconfig import FileAction, NodeConfig
from reconciler.render.rendered import RenderedFile
from reconciler.statedir import StateDir


def load(state: StateDir, key: dict[str, Any],
         hashes: dict[str, str | None]) -> tuple[NodeConfig, dict[str, list[RenderedFile]]] | None:
    """The node and its rendered files kept under `key`, each file's content matching its
    sha256 in `hashes` (the quiet record's, by path); None when there is no such pack."""
    try:
        raw = read_own(quiet.pack_path(state))
        header, config, blob = raw.split(b"\n", 2)
        found = json.loads(header)
        if found["key"] != key:
            return None
        node = NodeConfig.model_validate_json(config)
        actions = {action.id: action for action in node.actions}
        rendered: dict[str, list[RenderedFile]] = {}
        for path, action_id, source, offset, size in found["files"]:
            content = None if size < 0 else blob[offset:offset + size]
            digest = None if content is None else hashlib.sha256(content).hexdigest()
            action = actions[action_id]
            if path not in hashes or hashes[path] != digest or not isinstance(action, FileAction):
                return None
            rendered.setdefault(action_id, []).append(RenderedFile(path, action, content, source))
        return node, rendered
    except (OSError, ValueError, LookupError, TypeError):
        return None


@dataclass(frozen=True)
class Partial:
    """What a run that found some paths drifted plans: the node and its rendered files as
    kept, the actions of the drifted paths, and how many paths the others keep in sync
    (and their recorded entries)."""

    node: NodeConfig
    rendered: dict[str, list[RenderedFile]]
    touched: frozenset[str]
    in_sync: int
    unchanged: dict[str, quiet.Entry]  # the quiet record's entries of the paths left alone


def partial(state: StateDir, found: quiet.Drifted) -> Partial | None:
    """The partial run of `found`'s drifted paths; None without a pack for its key."""
    kept = load(state, found.key, found.recorded)
    paths = quiet.action_paths(*kept) if kept is not None else None
    if kept is None or paths is None:
        return None
    drifted = set(found.paths)
    touched = frozenset(action for action, held in paths.items() if drifted.intersection(held))
    left = [path for action, held in paths.items() if action not in touched for path in held]
    return Partial(kept[0], kept[1], touched, len(left),
                   {path: found.entries[path] for path in left if path in found.entries})
