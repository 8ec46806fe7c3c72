"""`plan --check`: the head's `<check>`s, run on this machine before merge.

For every node the change touches, each action with checks (nginx's service…) gets a
candidate: the files, links and purged directories that it and the actions notifying it
render at the head — what the node's check would see after applying. Candidates are
deduplicated by content, so 240 proxies rendering the same nginx files cost one run of
`nginx -t`. Each run happens in a bubblewrap sandbox of this machine, the candidate bound
read-only over its real paths (system/confine.py), so the machine's own configuration is
never read in its place nor changed. A check that fails fails the merge request, naming
the nodes, the files and the checker's words.

A candidate that cannot stand for the node is not run, and says why: a file that depends
on facts the nodes have not published, or that reads encrypted values (a placeholder is
no value a daemon accepts). Without a working sandbox no check runs (see README).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from reconciler.apply.checks import checked_sources
from reconciler.compile import names
from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.nodeconfig import (
    Action,
    Check,
    DirectoryAction,
    NodeConfig,
    SymlinkAction,
)
from reconciler.facts.model import Facts
from reconciler.render.renderer import RenderedFile, Renderer, render_node
from reconciler.review.names import compress_names
from reconciler.source.snapshot import open_snapshot
from reconciler.system.confine import Candidate, Unconfined, confine, staged
from reconciler.system.process import run_command

OUTPUT_LIMIT = 2000  # characters of a checker's output kept
SEALED = b"ENCRYPTED-"  # how an encrypted value renders away from its node


class CheckRun(BaseModel):
    """One check run on one distinct candidate, and every node it stands for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: str
    action: str
    origin: str
    status: Literal["passed", "failed", "not-run"]
    nodes: tuple[str, ...]
    patterns: tuple[str, ...]
    files: tuple[str, ...]  # the candidate's paths (those the output names first)
    detail: str | None = None  # the checker's output, or why it did not run


class ChecksReport(BaseModel):
    """Every check of the nodes a change touches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: int  # nodes whose checks were considered
    runs: tuple[CheckRun, ...] = ()

    @property
    def failed(self) -> tuple[CheckRun, ...]:
        return tuple(run for run in self.runs if run.status == "failed")

    @property
    def headline(self) -> str:
        counts = {status: sum(run.status == status for run in self.runs)
                  for status in ("failed", "passed", "not-run")}
        said = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "none"
        return (f"checks: {len(self.runs)} distinct configuration(s) of {self.nodes} "
                f"node(s): {said}")


@dataclass
class _Pending:
    check: Check
    action: str
    candidate: Candidate | None
    why: str | None
    secrets: frozenset[str]  # paths of secret files in the candidate
    nodes: list[str] = field(default_factory=list)


def check_fleet(repo: str, head_rev: str, node_names: Iterable[str],
                facts: Mapping[str, Facts] | None = None) -> ChecksReport:
    """Run the checks of `node_names` at `head_rev` of `repo`, once per distinct candidate."""
    fleet = load_fleet(open_snapshot(repo, head_rev))
    renderer = Renderer(fleet, facts=facts)
    pending: dict[tuple[str, str, str], _Pending] = {}
    considered = 0
    for name in node_names:
        node = compile_node(fleet, name)
        sources = checked_sources(node)
        if not sources:
            continue
        considered += 1
        rendered, _ = render_node(renderer, node)
        for action_id, group in sorted(sources.items()):
            action = node.action(action_id)
            assert action is not None, "checked_sources names the node's own actions"
            candidate, why = candidate_of(node, group, rendered)
            secret = frozenset(item.path for item in rendered
                               if item.action.id in group and item.action.secret)
            for check in action.checks:
                key = (check.run, action.id, why or _digest(candidate, node.name))
                entry = pending.setdefault(key, _Pending(check, action.id, candidate, why,
                                                         secret))
                entry.nodes.append(name)
    sandbox = _sandbox_problem()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        runs = list(pool.map(lambda entry: _run(entry, sandbox), pending.values()))
    runs.sort(key=lambda r: ({"failed": 0, "not-run": 1, "passed": 2}[r.status], r.action, r.run))
    return ChecksReport(nodes=considered, runs=tuple(runs))


def candidate_of(node: NodeConfig, group: set[str], rendered: list[RenderedFile]) -> \
        tuple[Candidate | None, str | None]:
    """What the checks of an action see at the head: the files, links and purged
    directories of the action and its notifiers; or why that cannot stand for the node."""
    files: list[tuple[str, bytes]] = []
    for item in rendered:
        if item.action.id not in group or (item.content is None and not item.undecided):
            continue
        if item.undecided or item.unknown_facts:
            unknown = ", ".join(item.unknown_facts) or "facts"
            return None, (f"{item.path} depends on {unknown}, not published by the node "
                          "(--facts DIR)")
        assert item.content is not None
        if item.action.secret and SEALED in item.content:
            return None, f"{item.path} holds encrypted values this machine cannot read"
        files.append((item.path, item.content))
    actions: list[Action] = [a for a in node.actions if a.id in group]
    links = tuple((a.path, a.target) for a in actions
                  if isinstance(a, SymlinkAction) and a.ensure == "present")
    emptied = tuple(a.path for a in actions if isinstance(a, DirectoryAction) and a.purge
                    and a.ensure == "present")
    made = tuple(sorted(a.path for a in node.actions
                        if isinstance(a, DirectoryAction) and a.ensure == "present"))
    return Candidate(tuple(sorted(files)), tuple(sorted(links)), emptied, made), None


def _digest(candidate: Candidate | None, node: str) -> str:
    """The candidate's identity, up to the node's own name (a header naming the node, a
    `server_name`): nodes that differ only there are one configuration to check."""
    digest = hashlib.sha256()
    own = node.encode()
    for path, content in candidate.files if candidate else ():
        same = hashlib.sha256(content.replace(own, b"\0NODE\0")).hexdigest()
        digest.update(f"F{path}\0{same}\0".encode())
    for path, target in candidate.links if candidate else ():
        digest.update(f"L{path}\0{target}\0".encode())
    for path in candidate.emptied if candidate else ():
        digest.update(f"E{path}\0".encode())
    for path in candidate.scratch_dirs if candidate else ():
        digest.update(f"D{path}\0".encode())
    return digest.hexdigest()


def _sandbox_problem() -> str | None:
    """Why no candidate can be checked on this machine, or None when a sandbox works."""
    try:
        argv = confine("/", "true", candidate=Candidate(), stage="/")
    except Unconfined as why:
        return str(why)
    probe = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if probe.returncode != 0:
        return (f"bubblewrap cannot make a sandbox here ({probe.stderr.strip()}): it needs "
                "user namespaces, or running as root")
    return None


def _run(entry: _Pending, sandbox: str | None) -> CheckRun:
    members = sorted(entry.nodes, key=names.parse)
    candidate = entry.candidate
    paths = tuple(path for path, _ in candidate.files) if candidate else ()

    def said(status: Literal["passed", "failed", "not-run"], files: tuple[str, ...],
             detail: str | None) -> CheckRun:
        return CheckRun(run=entry.check.run, action=entry.action,
                        origin=str(entry.check.origin), status=status, nodes=tuple(members),
                        patterns=tuple(compress_names(members)), files=files, detail=detail)

    why = entry.why or sandbox
    if why is not None or candidate is None:
        return said("not-run", paths, why)
    with staged(candidate) as stage:
        try:
            argv = confine("/", entry.check.run, candidate=candidate, stage=stage)
        except Unconfined as problem:
            return said("not-run", paths, str(problem))
        result = run_command(argv, root="/", timeout=entry.check.timeout)
    if result.returncode == 0 and not result.timed_out:
        return said("passed", paths, None)
    if result.returncode == 127:  # the shell found no such program: not the change's fault
        return said("not-run", paths, f"this machine lacks the checker: "
                                      f"{(result.stdout + result.stderr).strip()[-OUTPUT_LIMIT:]}")
    how = "timed out" if result.timed_out else f"exited {result.returncode}"
    output = _scrub((result.stdout + result.stderr).strip(), candidate,
                    entry.secrets)[-OUTPUT_LIMIT:]
    shown = tuple(sorted(paths, key=lambda path: _mentioned(output, path, candidate)))
    return said("failed", shown, f"{how}: {output or 'no output'}")


def _mentioned(output: str, path: str, candidate: Candidate) -> int:
    """Where the output first names a file (itself or through a link to it); files it
    does not name sort last."""
    names = [path, *(link for link, target in candidate.links if target == path)]
    found = [output.find(name) for name in names if name in output]
    return min(found) if found else len(output) + 1


def _scrub(output: str, candidate: Candidate, secret: frozenset[str]) -> str:
    """The checker's output without any line of a secret file in it."""
    for path, content in candidate.files:
        if path not in secret:
            continue
        for line in sorted(content.decode(errors="replace").splitlines(), key=len,
                           reverse=True):
            if len(line.strip()) >= 6:
                output = output.replace(line.strip(), "[secret]")
    return output


def text(report: ChecksReport) -> str:
    """The checks as the plan's text and markdown show them: each failed or not-run run
    with its nodes and words, the passed ones counted per check."""
    lines = [report.headline]
    passed: dict[tuple[str, str, str], list[CheckRun]] = {}
    for run in report.runs:
        if run.status == "passed":
            passed.setdefault((run.run, run.action, run.origin), []).append(run)
            continue
        lines.append(f"{run.status}: `{run.run}` of {run.action} ({run.origin}) on "
                     f"{', '.join(run.patterns)}")
        if run.status == "failed":
            lines.append(f"  files (those the checker names first): {', '.join(run.files)}")
        lines += [f"  | {line}" for line in (run.detail or "").splitlines()]
    for (command, action, origin), runs in passed.items():
        nodes = sum(len(run.nodes) for run in runs)
        lines.append(f"passed: `{command}` of {action} ({origin}): {len(runs)} "
                     f"configuration(s) of {nodes} node(s)")
    return "\n".join(lines) + "\n"
