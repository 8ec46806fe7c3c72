"""Who may publish: the fleet's nodes and their registered keys at the config repo's main.

Read on the git server by the reports hook. Expanding the fleet's node ranges means
parsing the fleet, so the node list is kept per config commit in a small cache file
in the reports repository; each push then costs one `rev-parse` and one `cat-file`
for the keys of the nodes it names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.fleet import keys
from reconciler.git import Git

CACHE = "reconciler-fleet-nodes.json"


def setting(git_dir: Path, key: str) -> str | None:
    """`git config KEY` of the repository at `git_dir` (None when unset)."""
    done = Git(git_dir).run("config", "--get", key)
    return done.out.strip() or None if done.ok else None


def config_repo(reports_dir: Path) -> Path:
    """The config repository whose main decides membership: `reconciler.configRepo`
    (relative to the reports repository), else the reports repository itself."""
    named = setting(reports_dir, "reconciler.configRepo")
    return (reports_dir / named).resolve() if named else reports_dir.resolve()


def remember_config_repo(reports_dir: Path, config_dir: Path) -> None:
    """Record, in the reports repository, which config repository decides membership."""
    if not (config_dir / "HEAD").is_file() and not (config_dir / ".git").exists():
        raise UsageError.because(f"{config_dir} is not a git repository")
    done = Git(reports_dir).run("config", "reconciler.configRepo", str(config_dir.resolve()))
    if not done.ok:
        raise UsageError.because(f"{reports_dir}: cannot set reconciler.configRepo: "
                                 f"{done.tail()}")


def branch_tip(config_dir: Path, branch: str) -> str | None:
    done = Git(config_dir).run("rev-parse", "--verify", "--quiet",
                               f"refs/heads/{branch}^{{commit}}")
    return done.out.strip() or None if done.ok else None


def fleet_nodes(config_dir: Path, commit: str, cache: Path) -> set[str]:
    """The node names of the fleet at `commit` (cached per commit in `cache`).
    Raises ReconcilerError (ConfigError) when the fleet at that commit does not load."""
    try:
        data = json.loads(cache.read_bytes())
        if data.get("commit") == commit:
            return set(data["nodes"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    # Only a new config commit parses the fleet: the hook of every other push starts
    # without importing the compiler (half of its start-up).
    from reconciler.compile.compiler import load_fleet
    from reconciler.source.snapshot import open_snapshot

    names = load_fleet(open_snapshot(str(config_dir), commit)).node_names()
    temporary = cache.with_name(f".{cache.name}.{os.getpid()}")
    try:
        temporary.write_text(json.dumps({"commit": commit, "nodes": names}))
        os.replace(temporary, cache)
    except OSError:
        pass  # a read-only repository only loses the cache
    return set(names)


def registered_keys(config_dir: Path, commit: str, nodes: Iterable[str]) -> dict[str, list[str]]:
    """Each node's registered public signing keys at `commit` (one `cat-file --batch`)."""
    wanted = sorted(set(nodes))
    request = "".join(f"{commit}:{keys.registered_path(n)}\n" for n in wanted).encode()
    out = Git(config_dir).run("cat-file", "--batch", stdin=request).stdout
    found: dict[str, list[str]] = {}
    at = 0
    for node in wanted:
        end = out.find(b"\n", at)
        if end < 0:
            break
        header = out[at:end].split()
        at = end + 1
        if len(header) != 3:
            continue
        size = int(header[2])
        text = out[at : at + size].decode("utf-8", "replace")
        at += size + 1
        found[node] = keys.parse_keys(text)[0]
    return found
