"""The desired state a settled run converged to, kept after a change-mode run beside the
quiet record (`remember`) and read back so that a run that finds a few paths drifted
plans and applies only them, without compiling or rendering.

It is kept under the quiet record's key (`STATE/desired.pack`, format in `_keep`):
the node's compiled configuration (without its variables, which only rendering reads)
and the rendered content of every managed file. A run with that key could only compile
and render the same again, so the pack stands in for both. Each file's content is
checked against the quiet record's hash of it; a pack that does not match is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler import __version__, quiet
from reconciler.atomicfile import read_own, write_atomic_all
from reconciler.compile.nodeconfig import FileAction, NodeConfig
from reconciler.render.rendered import RenderedFile
from reconciler.source.snapshot import files_under
from reconciler.statedir import StateDir

if TYPE_CHECKING:
    from reconciler.desire import Desired
    from reconciler.record.report import RunReport

PACK = "desired.pack"


def remember(state: StateDir, source: str, root: str, identity: str, desired: Desired,
             report: RunReport, partial: Partial | None = None) -> str | None:
    """After a change-mode run: record what the node now is when the run left it exactly
    as configured; otherwise drop the record, so the next run is a full one. After a
    `partial` run, the paths it found as recorded and left alone are not read again, nor
    its node serialized again. Writes only what changes, made durable together. Returns
    why it could not (the run failed), else None."""
    try:
        _remember(state, source, root, identity, desired, report,
                  partial.unchanged if partial else {}, partial.config if partial else None)
    except OSError as exc:
        return f"{quiet.quiet_path(state)}: could not record the quiet state: {exc.strerror or exc}"
    return None


def _remember(state: StateDir, source: str, root: str, identity: str, desired: Desired,
              report: RunReport, unchanged: Mapping[str, quiet.Entry],
              config: bytes | None) -> None:
    counts = report.counts
    by_action = action_paths(desired.node, desired.rendered) if settled(report) else None
    paths = [path for found in by_action.values() for path in found] \
        if by_action is not None else None
    target = quiet.quiet_path(state)
    if paths is None:
        if os.path.exists(target):
            os.unlink(target)
        _drop(state)
        return
    try:
        existing = read_own(target)
        before = json.loads(existing)["key"]
    except (OSError, ValueError, LookupError, TypeError):
        existing, before = b"", {}
    # The same config and reconciler read facts or not as they did: no template re-read.
    same = {name: before.get(name) for name in ("format", "version", "source")} == {
        "format": quiet.FORMAT, "version": __version__, "source": source}
    facts = None
    if (before.get("facts") is not None) if same else _reads_facts(desired):
        if desired.facts is None:
            return
        facts = quiet.facts_digest(desired.facts.model_dump_json())
    key = quiet.key_of(source, desired.node.name, root, state, identity, facts)
    # Every path the run found in sync or made so is in sync next time.
    now_in_sync = report.model_copy(update={
        "mode": "change", "result": "in-sync", "exit_code": 0, "actions": [], "orphans": [],
        "counts": type(counts)(in_sync=counts.in_sync + counts.applied), "problems": [],
        "notes": [], "source": None, "facts": None, "health": [], "revert": None})
    written = {item.path: item.content for item in desired.files()}
    data = json.dumps({"key": key, "report": now_in_sync.model_dump(mode="json"),
                       "entries": [unchanged.get(path) or quiet.live_entry(
                           root, path, written.get(path)) for path in paths]}).encode()
    # The kept state first, then the record naming its key, made durable together.
    pack = _kept(state, key, desired.node, desired.rendered, config)
    changed = [pack] if pack is not None else []
    if existing != data:
        changed.append((target, data, 0o600))
    write_atomic_all(changed)


def settled(report: RunReport) -> bool:
    """Whether a change-mode run left every action as configured: each in sync, or made so."""
    counts = report.counts
    return report.result in ("in-sync", "changed") and not (
        counts.pending or counts.held or counts.failed or counts.orphans or counts.skipped)


def as_rendered(desired: Desired, report: RunReport) -> frozenset[str]:
    """The files a settled change-mode run left holding their rendered content, when no
    action of the node but files, directories and symlinks could have changed one since:
    the history takes their content from the desired state, unread (record/recorder.py)."""
    if report.mode != "change" or not settled(report) \
            or action_paths(desired.node, desired.rendered) is None:
        return frozenset()
    return frozenset(item.path for item in desired.files())


def pack_path(state: StateDir) -> str:
    return str(state.path / PACK)


def _kept(state: StateDir, key: dict[str, Any], node: NodeConfig,
          rendered: dict[str, list[RenderedFile]], config: bytes | None
          ) -> tuple[str, bytes, int] | None:
    """The pack keeping `node` and its `rendered` files under `key` (path, data, mode), or
    None when it holds them already. `config` is `node` as the pack it came from holds it
    (a partial run's), not serialized again."""
    files: list[list[Any]] = []
    blobs: list[bytes] = []
    offset = 0
    for action_id, items in rendered.items():
        for item in items:
            content = item.content
            size = -1 if content is None else len(content)
            files.append([item.path, action_id, item.source, offset, size])
            if content is not None:
                blobs.append(content)
                offset += size
    header = json.dumps({"key": key, "files": files}).encode()
    if config is None:  # one line
        config = node.model_copy(update={"variables": {}}).model_dump_json().encode()
    data = b"\n".join([header, config, b"".join(blobs)])
    target = pack_path(state)
    try:
        if read_own(target) == data:
            return None
    except FileNotFoundError:
        pass
    return target, data, 0o600


def _drop(state: StateDir) -> None:
    """No settled desired state to keep (the quiet record is dropped too)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pack_path(state))


def action_paths(node: NodeConfig, rendered: dict[str, list[RenderedFile]]
                 ) -> dict[str, list[str]] | None:
    """The paths each of the node's actions manages (its `rendered` files), by action id,
    or None when one action is not a plain file, directory or symlink (its state is not
    all in `lstat` and the content)."""
    paths: dict[str, list[str]] = {}
    for action in node.actions:
        if action.kind == "file" and not action.secret:
            paths[action.id] = [item.path for item in rendered.get(action.id, [])]
        elif (action.kind == "directory" and not action.purge) or action.kind == "symlink":
            paths[action.id] = [action.path]
        else:
            return None
    return paths


def _reads_facts(desired: Desired) -> bool:
    """Whether any template of the commit mentions facts (then they feed the config)."""
    snapshot = desired.snapshot
    return any(b"facts" in snapshot.read(rel) for rel in files_under(snapshot, "templates"))


def load(state: StateDir, key: dict[str, Any], hashes: dict[str, str | None]
         ) -> tuple[NodeConfig, dict[str, list[RenderedFile]], bytes] | None:
    """The node and its rendered files kept under `key`, each file's content matching its
    sha256 in `hashes` (the quiet record's, by path), and the node as the pack holds it;
    None when there is no such pack."""
    try:
        raw = read_own(pack_path(state))
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
        return node, rendered, config
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
    config: bytes  # `node` as the pack holds it


def partial(state: StateDir, found: quiet.Drifted) -> Partial | None:
    """The partial run of `found`'s drifted paths; None without a pack for its key."""
    kept = load(state, found.key, found.recorded)
    if kept is None:
        return None
    node, rendered, config = kept
    paths = action_paths(node, rendered)
    if paths is None:
        return None
    drifted = set(found.paths)
    touched = frozenset(action for action, held in paths.items() if drifted.intersection(held))
    left = [path for action, held in paths.items() if action not in touched for path in held]
    return Partial(node, rendered, touched, len(left),
                   {path: found.entries[path] for path in left if path in found.entries},
                   config)
