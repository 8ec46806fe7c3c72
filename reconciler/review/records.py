"""Dependency records: for each node at one commit, which repo files its compiled config
and each of its file and tree actions were made from (render/deps.py).

A plan writes the records of the revisions it rendered, and the next plan from one of
them (review/incremental.py) re-renders only what the change touches. They live in the
config repo's git directory, `reconciler/plan-records/<commit>-<facts>.json.gz`, one file
per commit and set of published facts; a missing, unreadable or older-format file only
means a full plan.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.facts.model import Facts
from reconciler.git import Git

FORMAT = 1


@dataclass(frozen=True)
class NodeRecord:
    """One node at one commit: whether it compiled and rendered without a problem, the
    files its compiled config depends on, and each file or tree action's own."""

    ok: bool
    compiled: tuple[str, ...]
    actions: tuple[tuple[str, tuple[str, ...]], ...]


class _RecordFile(BaseModel):
    """The stored form: distinct records once, and each node's index into them."""

    model_config = ConfigDict(extra="forbid")

    format: int
    commit: str
    records: list[tuple[bool, list[str], list[tuple[str, list[str]]]]]
    nodes: dict[str, int]


def facts_key(facts: Mapping[str, Facts] | None) -> str:
    """Which published facts a plan rendered with (records hold for those facts only)."""
    if not facts:
        return "nofacts"
    digest = hashlib.sha256()
    for name in sorted(facts):
        digest.update(f"{name}\0{facts[name].model_dump_json()}\0".encode())
    return digest.hexdigest()[:16]


def records_dir(repo: str) -> Path | None:
    """Where the records of `repo` live, or None when it has no git directory."""
    found = Git(repo).ok("rev-parse", "--git-common-dir")
    if found is None:
        return None
    return (Path(repo) / found.strip()).resolve() / "reconciler" / "plan-records"


def _path(where: Path, commit: str, facts: str) -> Path:
    return where / f"{commit}-{facts}.json.gz"


def exists(where: Path, commit: str | None, facts: str) -> bool:
    """Whether `commit` has records (read or not)."""
    return commit is not None and _path(where, commit, facts).is_file()


def load(where: Path | None, commit: str | None, facts: str) -> dict[str, NodeRecord] | None:
    """The records of `commit`, or None when there are none (or they cannot be trusted)."""
    if where is None or commit is None:
        return None
    try:
        data = _RecordFile.model_validate_json(gzip.decompress(
            _path(where, commit, facts).read_bytes()))
    except (OSError, EOFError, gzip.BadGzipFile, ValidationError):
        return None
    if data.format != FORMAT or data.commit != commit:
        return None
    table = [NodeRecord(ok, tuple(compiled), tuple((a, tuple(d)) for a, d in actions))
             for ok, compiled, actions in data.records]
    try:
        return {name: table[index] for name, index in data.nodes.items()}
    except IndexError:
        return None


def save(where: Path | None, commit: str | None, facts: str,
         records: Mapping[str, NodeRecord]) -> None:
    """Keep the records of `commit` for the next plan; a directory that cannot be written
    only costs that plan its speed."""
    if where is None or commit is None:
        return
    table: dict[NodeRecord, int] = {}
    nodes = {name: table.setdefault(record, len(table)) for name, record in records.items()}
    stored = {"format": FORMAT, "commit": commit,
              "records": [[r.ok, list(r.compiled), [[a, list(d)] for a, d in r.actions]]
                          for r in table],
              "nodes": nodes}
    data = gzip.compress(json.dumps(stored, separators=(",", ":")).encode(), compresslevel=5)
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=where, prefix=".records-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, _path(where, commit, facts))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
