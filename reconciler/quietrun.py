"""A quiet `reconciler run`, answered before the command line interface and the engine
are imported (`entry.py`): no pydantic, Jinja2, lxml, rich or click.

A full `run` from agent.toml alone (no setting flags) that finds the node in sync
leaves `STATE/quiet-run.json`: what it was run from (reconciler's version, the
agent.toml file and its bytes, the host name when the file names no node) and the
settings it read from there. The next `run` from the same inputs is answered here
when

- nothing is pinned or refused and no check of the cache or fleet report is due;
- the followed branch's tip is still the last good commit: the tip file says so
  (`tip-url`, source/tip.py), or one `ls-refs` of that one ref to the URL the node
  fetches from first (source/lsrefs.py);
- every managed path is as the quiet record keeps it (quiet.py).

It is then recorded as a full run in sync records itself (last-run.json, the
metrics) and prints the same summary. Anything else, or anything that cannot be
read, takes the full run, which writes or drops the record again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import __version__, quiet
from reconciler.agent.urls import redact, spread
from reconciler.source import stamps, tip
from reconciler.source.lsrefs import ask_git
from reconciler.statedir import AGENT_CONFIG, DEFAULT, StateDir

RECORD = "quiet-run.json"
_OPTIONS = {"--config", "--wait", "--format"}  # all a quiet run may be given
_REPORTS = "reports"  # fleet/publish.py's files in the state directory
_OUTBOX = "outbox"


def quiet_source(commit: str, require_signed: str, trust: Iterable[str | os.PathLike[str]]) -> str:
    """What a quiet record ties a `run` to: the commit and what its signatures are checked
    against (a revoked key must take the full run, which checks again)."""
    return " ".join(map(str, [commit, require_signed, *(quiet.stamp(path) for path in trust)]))


def _inputs(config: str, text: bytes, host: str | None) -> str:
    """What the settings of a run follow from: reconciler's version, agent.toml (its name
    and bytes) and, when the file names no node, the host's name."""
    return hashlib.sha256(json.dumps([__version__, os.path.abspath(config),
                                      text.decode("utf-8", "replace"), host]).encode()).hexdigest()


def remember(config: str, text: bytes, named_node: bool, settings: Mapping[str, Any],
             result: str, exit_code: int) -> None:
    """After a full `run` from agent.toml alone (`text`, `settings` as read from it):
    keep what a quiet run needs when it found the node in sync, else drop it. Writes
    only when that changes."""
    target = Path(settings["state_dir"]) / RECORD
    try:
        if result != "in-sync" or exit_code != 0:
            target.unlink(missing_ok=True)
            return
        data = json.dumps({"inputs": _inputs(config, text, None if named_node
                                             else str(settings["node"])),
                           "settings": dict(settings)}, sort_keys=True).encode()
        if target.exists() and target.read_bytes() == data:
            return
        from reconciler.atomicfile import write_atomic

        write_atomic(target, data)
    except OSError:
        return  # the next run is a full one, which tries again


def quiet_run(argv: Sequence[str]) -> int | None:
    """Answer `run` when nothing changed: the exit code (0, in sync) after printing the
    run's summary, or None when the full run must decide."""
    if not argv or argv[0] != "run":
        return None
    options = quiet.command_options(argv[1:], _OPTIONS)
    if options is None:
        return None
    started, clock = datetime.now(UTC), time.monotonic()
    config = options.get("--config", AGENT_CONFIG)
    try:
        with open(config, "rb") as handle:
            text = handle.read()
        state = StateDir(Path(_setting(text, "state-dir") or DEFAULT))
        with open(state.path / RECORD, "rb") as handle:
            record = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    host = None if _setting(text, "node") else socket.getfqdn()
    if not isinstance(record, dict) or record.get("inputs") != _inputs(config, text, host) \
            or record["settings"]["state_dir"] != str(state.path):
        return None
    settings: dict[str, Any] = record["settings"]
    try:
        with quiet.node_lock(state):
            report = _in_sync(state, settings, config, started, clock)
    except (OSError, ValueError, LookupError, TypeError):
        report = None  # the lock is held (the full run waits for it), or a file is unreadable
    if report is None:
        return None
    mode = "audit" if report["mode"] == "audit" else "apply"
    if report["mode_from"]:
        mode += f" (mode set by {report['mode_from']})"
    ceiling = f", ceiling {report['ceiling']}" if report["ceiling"] else ""
    print(f"{report['node']} — {mode} at {report['config_commit'][:12]}{ceiling}, "
          f"root {report['root']}")
    print(f"in-sync (exit 0): {report['counts']['in_sync']} in sync in "
          f"{report['duration_s']:.2f}s")
    return 0


def _setting(text: bytes, key: str) -> str | None:
    """The plain string agent.toml sets `key` to, read without a TOML parser (whose
    import costs more than the rest of a quiet run's reading). A misreading is harmless:
    the record must have been written for these very bytes, in the state directory they
    name, or the full run decides."""
    found = re.search(rb"""^[ \t]*["']?%s["']?[ \t]*=[ \t]*(?:"([^"\\\n]*)"|'([^'\n]*)')"""
                      % re.escape(key.encode()), text, re.MULTILINE)
    if found is None:
        return None
    return (found.group(1) if found.group(1) is not None else found.group(2)).decode()


def _in_sync(state: StateDir, settings: dict[str, Any], config: str, started: datetime,
             clock: float) -> dict[str, Any] | None:
    """The recorded report of a run in sync, or None when the full run must decide."""
    with open(state.source_state, "rb") as handle:
        memory = json.loads(handle.read())
    commit = memory["last_good"]
    node, branch = str(settings["node"]), settings["branch"]
    if memory.get("pinned") or memory.get("refused") or not commit or branch is None \
            or settings["commit"] is not None or _report_due(settings):
        return None
    if stamps.due(state.source_cache, stamps.CHECKED, node, stamps.CHECK_PERIOD):
        return None  # the cache's periodic check: the full run does it
    served_by = _unmoved(state, settings, str(commit))
    if served_by is None:
        return None
    root, identity = str(settings["root"]), str(settings["identity"])
    source = quiet_source(commit, settings["require_signed"], [
        path for path in (settings["allowed_signers"], settings["gpg_home"]) if path])
    found = quiet.in_sync(state, root, lambda facts: quiet.key_of(
        source, node, root, state, identity, _facts(root) if facts else None), hand_over=True)
    if found is None:
        return None
    mode, mode_from = (settings["mode"], config) if settings["mode"] else \
        ("change", found.mode_from)
    ceiling = str(settings["max_severity"] or found.ceiling)
    return quiet.record_quiet(
        state, found, mode=mode, mode_from=mode_from, ceiling=ceiling, started=started,
        duration_s=time.monotonic() - clock, commit=commit,
        source=_source_report(state, commit, branch, served_by))


def _unmoved(state: StateDir, settings: dict[str, Any], commit: str) -> str | None:
    """Who said the followed branch's tip is still `commit` (the tip URL, or the git URL
    the node fetches from first), or None when it moved or nobody could tell."""
    branch, timeout = str(settings["branch"]), float(settings["fetch_timeout"])
    url = settings["tip_url"]
    if url and not stamps.due(state.source_cache, stamps.FETCHED, str(settings["node"]),
                                stamps.GIT_PERIOD):
        return redact(url) if tip.ask(url, branch, state.path, timeout) == commit else None
    remote = spread(str(settings["node"]), settings["remote"], settings["mirrors"])[0]
    if ask_git(remote, branch, state.source_cache, timeout) != commit:
        return None
    if url:
        stamps.note(state.source_cache, stamps.FETCHED)
    return redact(remote)


def _report_due(settings: dict[str, Any]) -> bool:
    """Whether the fleet report after this run would be more than nothing: a heartbeat due,
    a report waiting to be pushed, or one the reports URL has not taken yet
    (fleet/publish.py decides; the full run calls it)."""
    if not os.path.isfile(settings["signing_key"]):
        return False
    reports = Path(settings["state_dir"]) / _REPORTS
    published = _json(reports / "published.json")
    pushed = _json(reports / "pushed.json")
    first = settings["reports"] or settings["remote"]
    urls = pushed.get("urls")
    if not isinstance(urls, dict):
        urls = {}
    last = published.get("time")
    return not isinstance(last, int | float) \
        or time.time() - last >= float(settings["report_interval"]) \
        or any(name.endswith(".json") for name in _listdir(reports / _OUTBOX)) \
        or (pushed.get("tip") is not None and urls.get(first) != pushed.get("tip"))


def _source_report(state: StateDir, commit: str, branch: str, served_by: str) -> dict[str, Any]:
    """Where the commit came from, as `SourceReport` says it (the subject as the last
    run, at the same commit, read it)."""
    last = _json(state.last_run).get("source")
    subject = None
    if isinstance(last, dict) and last.get("commit") == commit:
        subject = last.get("subject")
    return {"commit": commit, "subject": subject, "branch": branch, "tip": commit,
            "signed_by": None, "remote": served_by, "failover": None, "stale": None,
            "pinned": False, "refused": None, "rollout": None}


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _facts(root: str) -> str:
    """The digest of this node's facts, for a config whose templates read them."""
    from reconciler.facts.gather import gather_at

    return quiet.facts_digest(gather_at(root).model_dump_json())
