"""Repo files that actions carry as values: SSH keys, block contents, APT keyrings.

Read once per revision at compile time, so `validate` finds a missing or broken file
(at the action's line, or the key file's own line), a node never meets one, and a
fleet plan sees a changed key as a changed action.
"""

from __future__ import annotations

import hashlib

from reconciler.compile.inventory import TEMPLATES_DIR
from reconciler.compile.nodeconfig import (
    Action,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
)
from reconciler.compile.sshkeys import check_key, keys_in_file
from reconciler.errors import ConfigError, Problem
from reconciler.source.snapshot import Snapshot

ARMORED_KEY = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


def resolve(snapshot: Snapshot, actions: list[Action], problems: list[Problem]) -> list[Action]:
    """The actions with the repo files they name read into them; a problem for each file
    that is missing or is not what its action needs (that action is then left out)."""
    resolved: list[Action] = []
    for action in actions:
        found: list[Problem] = []
        match action:
            case AuthorizedKeysAction() if action.key_sources:
                action = _with_keys(snapshot, action, found)
            case BlockAction():
                action = _with_content(snapshot, action, found)
            case AptSourceAction() if action.key is not None and action.ensure == "present":
                action = _with_keyring(snapshot, action, found)
        problems.extend(found)
        if not found:
            resolved.append(action)
    return resolved


def _read(snapshot: Snapshot, action: Action, rel: str, what: str,
          problems: list[Problem]) -> bytes | None:
    path = f"{TEMPLATES_DIR}/{rel}"
    try:
        if snapshot.is_file(path):
            return snapshot.read(path)
    except ConfigError as exc:
        problems.extend(Problem(p.message, action.origin.path, action.origin.line,
                                action=action.id) for p in exc.problems)
        return None
    problems.append(Problem(f"{what} {path} not found", action.origin.path,
                            action.origin.line, action=action.id))
    return None


def _with_keys(snapshot: Snapshot, action: AuthorizedKeysAction,
               problems: list[Problem]) -> AuthorizedKeysAction:
    keys = list(action.keys)
    for rel in action.key_sources:
        data = _read(snapshot, action, rel, "key file", problems)
        if data is None:
            continue
        found = keys_in_file(data.decode("utf-8", "replace"))
        if not found:
            problems.append(Problem(f"key file {TEMPLATES_DIR}/{rel} holds no key",
                                    action.origin.path, action.origin.line, action=action.id))
        for number, line in found:
            try:
                keys.append(check_key(line))
            except ValueError as exc:
                problems.append(Problem(str(exc), f"{TEMPLATES_DIR}/{rel}", number,
                                        action=action.id))
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        problems.append(Problem(f"the same key is given twice: {duplicates[0][:60]}",
                                action.origin.path, action.origin.line, action=action.id))
    return action.model_copy(update={"keys": tuple(keys)})


def _with_content(snapshot: Snapshot, action: BlockAction,
                  problems: list[Problem]) -> BlockAction:
    content = action.content
    if action.source is not None:
        data = _read(snapshot, action, action.source, "block source", problems)
        if data is None:
            return action
        try:
            content = data.decode()
        except UnicodeDecodeError:
            problems.append(Problem(f"block source {TEMPLATES_DIR}/{action.source} is not "
                                    "UTF-8 text", action.origin.path, action.origin.line,
                                    action=action.id))
            return action
    markers = {f"{action.comment} BEGIN reconciler ", f"{action.comment} END reconciler "}
    if any(line.strip().startswith(tuple(markers)) for line in content.splitlines()):
        problems.append(Problem("the block's content holds a reconciler marker line",
                                action.origin.path, action.origin.line, action=action.id))
    return action.model_copy(update={"content": content})


def _with_keyring(snapshot: Snapshot, action: AptSourceAction,
                  problems: list[Problem]) -> AptSourceAction:
    assert action.key is not None
    data = _read(snapshot, action, action.key, "keyring", problems)
    if data is None:
        return action
    armored = action.key.endswith(".asc")
    if (armored and not data.lstrip().startswith(ARMORED_KEY)) or \
            (not armored and (not data or not data[0] & 0x80)):
        kind = "an armored OpenPGP public key" if armored else "a binary OpenPGP keyring"
        problems.append(Problem(f"keyring {TEMPLATES_DIR}/{action.key} is not {kind}",
                                action.origin.path, action.origin.line, action=action.id))
        return action
    return action.model_copy(update={"key_sha256": hashlib.sha256(data).hexdigest()})
