"""Validate a whole revision: schema, every node compiled, every template rendered, and
every secret encrypted to exactly the nodes that use it.

The fleet is parsed once; nodes are compiled and rendered in worker processes
(forked, so each inherits the parsed fleet and compiles each template once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jinja2

from reconciler.compile import lint
from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.errors import ConfigError, Problem
from reconciler.facts.model import Facts
from reconciler.fleet.keys import check_registered
from reconciler.render import budget
from reconciler.render.renderer import Renderer
from reconciler.render.usage import templates_of, used_sealed
from reconciler.review.workers import fan_out
from reconciler.secrets.check import check_secrets
from reconciler.source.snapshot import Snapshot

MAX_REPORTED = 200


@dataclass
class Finding:
    """One distinct problem and how many nodes share it."""

    problem: Problem
    nodes: int = 1
    # The nodes met so far: one node's many files with the same problem count once.
    seen: set[str | None] = field(default_factory=set, repr=False)

    def __str__(self) -> str:
        return finding_line(str(self.problem), self.nodes)


def finding_line(problem: str, nodes: int) -> str:
    """`path:line: message`, with how many more nodes share it."""
    more = f" (and {nodes - 1} more nodes)" if nodes > 1 else ""
    return f"{problem}{more}"


@dataclass
class ValidationResult:
    """What `validate` found: counts for the summary line, and the problems (bounded)."""

    nodes: int = 0
    classes: int = 0
    files: int = 0
    without_facts: int = 0  # files that depend on facts no node published: placeholders
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # valid, but likely typos (lint.py)
    omitted: int = 0  # distinct problems beyond MAX_REPORTED, counted but not kept
    _grouped: dict[tuple[str, int | None, str], Finding] = field(
        default_factory=dict, init=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, problem: Problem) -> None:
        """Count `problem`; the same problem met on another node only bumps its count."""
        key = (problem.path, problem.line, problem.message)
        found = self._grouped.get(key)
        if found is not None:
            if problem.node is None or problem.node not in found.seen:
                found.nodes += 1
                found.seen.add(problem.node)
            return
        found = self._grouped[key] = Finding(problem, seen={problem.node})
        if len(self.findings) < MAX_REPORTED:
            self.findings.append(found)
        else:
            self.omitted += 1


_worker_fleet: Fleet | None = None
_worker_renderer: Renderer | None = None


def _init_worker(fleet: Fleet, facts: Mapping[str, Facts] | None) -> None:
    global _worker_fleet, _worker_renderer
    _worker_fleet = fleet
    _worker_renderer = Renderer(fleet, facts=facts)


def _check_chunk(
    names: list[str],
) -> tuple[int, list[Problem], int, list[tuple[str, str]], list[str], frozenset[str] | None]:
    """Files rendered, problems, files rendered with placeholders for facts,
    (ciphertext path, node) for each encrypted value a node's templates read, the nodes
    whose templates do not all parse (which encrypted values they read is unknown), and
    the variables they read (None: any, a template includes one by a computed name)."""
    assert _worker_fleet is not None and _worker_renderer is not None
    rendered = 0
    without_facts = 0
    problems: list[Problem] = []
    usage: list[tuple[str, str]] = []
    unknown: list[str] = []
    templates: set[str] = set()
    with budget.timing():  # one handler for the profiling timer, not one per node
        for name in names:
            try:
                node = compile_node(_worker_fleet, name)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            files, found = budget.render_timed(_worker_renderer, node, budget.REVIEW_CPU_SECONDS)
            rendered += len(files)
            without_facts += sum(1 for item in files if item.unknown_facts)
            problems.extend(found)
            try:
                usage += [(sealed.path, name)
                          for sealed in used_sealed(_worker_renderer, node).values()]
            except ConfigError:
                unknown.append(name)  # the render above reported why
            templates.update(templates_of(_worker_renderer, node))
    return (rendered, problems, without_facts, usage, unknown,
            _read_by(_worker_renderer, templates))


def _read_by(renderer: Renderer, templates: set[str]) -> frozenset[str] | None:
    """The variables `templates` read, or None when that is unknowable: one includes
    another by a computed name, or does not parse."""
    read: set[str] = set()
    for name in templates:
        try:
            names, dynamic = renderer.referenced(name)
        except (ConfigError, jinja2.TemplateError):
            return None  # render reported it
        if dynamic:
            return None
        read |= names
    return frozenset(read)


def validate(
    snapshot: Snapshot, jobs: int | None = None, facts: Mapping[str, Facts] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationResult:
    """Check everything at this revision, rendering with the `facts` nodes published
    (placeholders for the others); problems are grouped, identical ones counted once.
    `progress(done, total)` hears of the nodes as they are checked."""
    started = time.monotonic()
    result = ValidationResult()
    try:
        fleet = load_fleet(snapshot)
    except ConfigError as exc:
        for problem in exc.problems:
            result.add(problem)
        result.seconds = time.monotonic() - started
        return result
    names = fleet.node_names()
    for problem in check_registered(snapshot, set(names)):  # keys/nodes/<node>/signing.pub
        result.add(problem)
    result.nodes = len(names)
    result.classes = len(fleet.classes)
    done = []
    checked = 0
    for chunk in fan_out(names, jobs, _init_worker, (fleet, facts), _check_chunk):
        done.append(chunk)
        checked += chunk[1]
        if progress is not None:
            progress(checked, len(names))
    done.sort(key=lambda d: d[0])
    outcomes = [result for _, _, result in done]  # node order: the node a problem names is stable
    usage: dict[str, set[str]] = {}
    unknown: set[str] = set()
    read: set[str] | None = set()
    for rendered, problems, without_facts, used, unsure, names_read in outcomes:
        read = None if read is None or names_read is None else read | names_read
        result.files += rendered
        result.without_facts += without_facts
        for problem in problems:
            result.add(problem)
        for path, node in used:
            usage.setdefault(path, set()).add(node)
        unknown.update(unsure)
    for problem in check_secrets(fleet, usage, unknown):
        result.add(problem)
    if result.ok:  # the likely typos, once nothing is plainly wrong
        result.warnings = lint.warnings(fleet, frozenset(read) if read is not None else None)
    result.seconds = time.monotonic() - started
    return result
