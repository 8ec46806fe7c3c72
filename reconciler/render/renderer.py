"""Render: file actions' templates through a sandboxed Jinja2 environment.

One `Renderer` per revision: templates are loaded only from the repo's `templates/`
at that revision and compiled once, then rendered for any number of nodes.
Undefined variables are errors; errors name the template, its line, and the node.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
import types
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from reconciler.compile.inventory import TEMPLATES_DIR, Fleet
from reconciler.compile.nodeconfig import FileAction, NodeConfig, TreeAction
from reconciler.compile.suggest import did_you_mean
from reconciler.errors import ConfigError, Problem
from reconciler.facts.model import Facts
from reconciler.render import facts as facts_view
from reconciler.render.bytecode import PackedBytecodeCache
from reconciler.render.modules import SharedModules
from reconciler.render.rendered import RenderedFile as RenderedFile
from reconciler.render.sandbox import BoundedSandbox, NoUndefined, SnapshotLoader
from reconciler.render.sources import TemplateSource, read_source
from reconciler.render.unseal import Placeholders, Unsealer, sealed_variables
from reconciler.secrets.sealed import Sealed
from reconciler.source.snapshot import Snapshot, files_under


class NodeView:
    """What a template sees as `node`: identity only, read-only."""

    __slots__ = ("cls", "cluster", "domain", "host", "name", "number", "product")

    def __init__(self, config: NodeConfig) -> None:
        self.name = config.name
        self.host = config.name.split(".", 1)[0]
        self.cls = config.cls
        self.number = config.number
        self.product = config.product
        self.cluster = config.cluster
        self.domain = config.domain

    def __str__(self) -> str:
        return self.name


class Renderer:
    """Renders templates of one revision for any node of its fleet."""

    def __init__(self, fleet: Fleet, bytecode_dir: str | None = None,
                 facts: Mapping[str, Facts] | None = None,
                 unsealer: Unsealer | None = None) -> None:
        """`bytecode_dir` keeps compiled templates between runs (keyed by source hash),
        so a node's periodic run does not recompile unchanged templates. `facts` are the
        facts known by node name (a node's own on the node, published ones elsewhere);
        templates of other nodes see placeholders (render/facts.py). `unsealer` gives
        encrypted variables their text: the node's identity on a node, else placeholders
        (nothing is decrypted)."""
        self.fleet = fleet
        self.facts: Mapping[str, Facts] = facts or {}
        self._facts_values: dict[str, dict[str, Any]] = {}
        self.unsealer: Unsealer = unsealer or Placeholders()
        self.cache: PackedBytecodeCache | None = None
        if bytecode_dir is not None:
            os.makedirs(bytecode_dir, mode=0o700, exist_ok=True)
            self.cache = PackedBytecodeCache(bytecode_dir)
        self.env = BoundedSandbox(
            loader=SnapshotLoader(fleet.snapshot),
            undefined=NoUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=-1,
            bytecode_cache=self.cache,
        )
        self.env.globals["nodes"] = self._nodes
        facts_view.install(self.env)
        self._modules = self.env.shared_modules = SharedModules(self.referenced)
        self._node_cache: dict[tuple[str | None, str | None, str | None], list[str]] = {}
        self._referenced: dict[str, tuple[frozenset[str], bool]] = {}
        self._templates: dict[str, jinja2.Template] = {}
        self._sources: dict[str, TemplateSource] = {}  # by name, kept with the templates
        # (template, secret variables) found free of them: every node of a class asks.
        self._free: set[tuple[str, frozenset[str]]] = set()
        self._present: set[str] = set()  # repo paths known to be files
        self._trees: dict[str, list[str] | None] = {}
        self._current: _NodeState | None = None

    def _nodes(
        self, cls: str | None = None, product: str | None = None, cluster: str | None = None
    ) -> list[str]:
        key = (cls, product, cluster)
        if key not in self._node_cache:
            self._node_cache[key] = self.fleet.node_names(cls, product, cluster)
        return list(self._node_cache[key])

    def save_cache(self) -> None:
        """Keep what this renderer compiled, and what the templates it read say, for the
        next run (with a `bytecode_dir`)."""
        if self.cache is not None:
            for source in self._sources.values():
                self.cache.keep_analysis(source.digest, source.analysis())
            self.cache.save()

    def template(self, name: str, node: str | None = None) -> jinja2.Template:
        found = self._templates.get(name)
        if found is not None:
            return found
        try:
            found = self._templates[name] = self.env.get_template(name)
            return found
        except jinja2.TemplateSyntaxError as exc:
            raise _template_error(exc, name, node) from None
        except jinja2.TemplateNotFound as exc:
            raise ConfigError([Problem(exc.message or f"template {name} not found",
                                       f"{TEMPLATES_DIR}/{name}", None, node)]) from None

    def tree(self, source: str) -> list[str] | None:
        """Every file under `templates/<source>` (`tree_entries`), or None when that is
        not a directory: listed once, for every node whose tree action ships it."""
        if source not in self._trees:
            snapshot = self.fleet.snapshot
            self._trees[source] = tree_entries(snapshot, source) \
                if snapshot.is_dir(f"{TEMPLATES_DIR}/{source}") else None
        return self._trees[source]

    def source(self, name: str) -> TemplateSource:
        """Template `name` (relative to templates/) at this revision, with what its text
        reads and includes; raises what loading or parsing it raises."""
        text, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        found = self._sources[name] = read_source(self.env, text, self.cache)
        return found

    def referenced(self, name: str, node: str | None = None) -> tuple[frozenset[str], bool]:
        """Variables template `name` reads by name, with every template it includes or
        imports; and whether it includes one by a computed name (unknowable here). A
        template that does not load or parse is a ConfigError at its own line (for
        `node`, when one is being rendered)."""
        found = self._referenced.get(name)
        if found is None:
            names: set[str] = set()
            dynamic = False
            pending, seen = [name], {name}
            while pending:
                at = pending.pop()
                try:
                    current = self.source(at)
                except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError) as exc:
                    raise _template_error(exc, at, node) from None  # at its own file:line
                names |= current.variables
                for other in current.includes:
                    if other is None:
                        dynamic = True
                    elif other not in seen:
                        seen.add(other)
                        pending.append(other)
            found = (frozenset(names), dynamic)
            self._referenced[name] = found
        return found

    def check_secrets(self, node: NodeConfig, action: FileAction | TreeAction, name: str) -> None:
        """Refuse a secret variable in a file that is not secret: it would reach diffs,
        reports and the node's history in plain text."""
        secrets = self._state(node).secrets
        if not secrets or action.secret or (name, secrets) in self._free:
            return
        names, dynamic = self.referenced(name, node.name)
        leaked = sorted(names & secrets)
        where = (action.origin.path, action.origin.line, node.name, action.id)
        if leaked:
            raise ConfigError([Problem(
                f"secret variable {', '.join(leaked)} used in {TEMPLATES_DIR}/{name} "
                f'(or what it includes), which is not a secret file (mark the action '
                f'secret="true")', *where)])
        if dynamic:
            raise ConfigError([Problem(
                f"{TEMPLATES_DIR}/{name} includes a template by a computed name, so it cannot "
                f"be shown free of secret variables; name it literally or mark the action "
                f'secret="true"', *where)])
        self._free.add((name, secrets))

    def render(self, node: NodeConfig, name: str, extra: Mapping[str, Any] | None = None,
               unknown: set[str] | None = None) -> str:
        """Render template `name` (relative to templates/) for `node`, with `extra`
        variables (an action's own). When the node's facts are not known, the facts the
        output shows as placeholders are added to `unknown`, and a template that must
        decide on one raises `FactsUnknown`."""
        template = self.template(name, node.name)
        state = self._state(node)
        context = dict(state.values)
        revealed = self._unseal(state, name, context)
        context["node"] = state.view
        context["facts"] = self._facts_of(node.name, unknown if unknown is not None else set())
        if extra:
            context.update(extra)
        try:
            # What `template.render(context)` does, less its two copies of the context
            # (which holds the environment's globals already).
            try:
                return "".join(template.root_render_func(
                    template.new_context(context, shared=True)))
            except Exception:
                self.env.handle_exception()
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError,
                LookupError, AttributeError, RecursionError, MemoryError) as exc:
            error = _template_error(exc, name, node.name, self._known(state, name, extra))
            raise ConfigError([_without_secrets(p, node, revealed)
                               for p in error.problems]) from None

    def _state(self, node: NodeConfig) -> _NodeState:
        """What every file of `node` renders with (kept for the node rendered last)."""
        state = self._current
        if state is None or state.node is not node:
            self._modules.clear()
            state = self._current = _NodeState(
                node, {**self.env.globals, **node.values()}, sealed_variables(node),
                node.secret_names(), NodeView(node))
        return state

    def _known(self, state: _NodeState, name: str, extra: Mapping[str, Any] | None
               ) -> list[str]:
        """The names a template may read besides the globals, in the order it was given
        them: for the nearest one to an undefined name."""
        names, dynamic = self.referenced(name, state.node.name) if state.sealed \
            else (frozenset(), False)
        known = dict.fromkeys(var for var in state.node.variables
                              if dynamic or var not in state.sealed or var in names)
        known.update(dict.fromkeys(("node", "facts")))
        known.update(dict.fromkeys(extra or ()))
        return list(known)

    def _unseal(self, state: _NodeState, name: str, context: dict[str, Any]) -> list[str]:
        """Give the encrypted variables template `name` reads their text in `context`
        (and drop the others); returns the texts, to keep them out of error messages."""
        if not state.sealed:
            return []
        names, dynamic = self.referenced(name, state.node.name)
        revealed = []
        node = state.node
        for var, value in state.sealed.items():
            if dynamic or var in names:
                context[var] = self.unsealer.unseal(node.name, node.variables[var], value)
                revealed.append(context[var])
            elif var in self.env.globals:  # the variable hid a global, which now shows
                context[var] = self.env.globals[var]
            else:
                del context[var]
        return revealed

    def _facts_of(self, node: str, unknown: set[str]) -> Any:
        known = self.facts.get(node)
        if known is None:
            return facts_view.unknown_facts(unknown)
        values = self._facts_values.get(node)
        if values is None:
            values = self._facts_values[node] = known.model_dump(mode="json")
        return values

    def inputs_digest(self, node: NodeConfig, name: str, extra: Mapping[str, Any]) -> str:
        """What the rendering of `name` for `node` depends on besides facts: the sources
        of the template and what it includes, and the variables. Equal digests at two
        revisions mean equal output, even where the output itself cannot be known."""
        digest = hashlib.sha256()
        pending, seen = [name], {name}
        while pending:
            current = pending.pop()
            source = self.source(current)
            digest.update(f"{current}\0{source.text}\0".encode())
            for other in source.includes:
                if other is None:  # a computed name: anything may be included
                    digest.update(f"revision {self.fleet.revision}".encode())
                elif other not in seen:
                    seen.add(other)
                    pending.append(other)
        values = {**node.values(), **extra, "node": node.name}
        digest.update(json.dumps(values, sort_keys=True, default=str).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class _NodeState:
    """One node as its templates see it: the environment's globals and the node's
    variables (encrypted ones still sealed), its encrypted and secret ones, its view."""

    node: NodeConfig
    values: dict[str, Any]
    sealed: dict[str, Sealed]
    secrets: frozenset[str]
    view: NodeView


def _secret_texts(value: Any) -> list[str]:
    """The leaves of a secret value as text, longest first (short ones would mangle words)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _secret_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _secret_texts(v)]
    text = str(value)
    return [text] if len(text) >= 4 else []


def _without_secrets(problem: Problem, node: NodeConfig, revealed: list[str]) -> Problem:
    """A template error may quote a value (a missing key, a template name): never a secret,
    plain or decrypted."""
    plain = [t for n in node.secret_names() if not isinstance(node.variables[n].value, Sealed)
             for t in _secret_texts(node.variables[n].value)]
    texts = sorted([*plain, *(t for r in revealed for t in _secret_texts(r))],
                   key=len, reverse=True)
    message = problem.message
    for text in texts:
        message = message.replace(text, "(secret)")
    return dataclasses.replace(problem, message=message) if message != problem.message else problem


def _template_error(
    exc: Exception, name: str, node: str | None, known: Iterable[str] = ()
) -> ConfigError:
    """Turn a Jinja2 error into `templates/x.j2:LINE: message (node N)`; an undefined
    name gets the nearest of the `known` variables."""
    path, line = f"{TEMPLATES_DIR}/{name}", None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        path = exc.filename or (f"{TEMPLATES_DIR}/{exc.name}" if exc.name else path)
        line = exc.lineno
        message = f"template syntax error: {exc.message}"
    else:
        found = _template_frame(exc.__traceback__)
        if found:
            path, line = found
        if isinstance(exc, SecurityError):
            message = f"unsafe template operation refused by the sandbox: {exc}"
        elif isinstance(exc, jinja2.UndefinedError):
            detail = str(exc)
            prefix = "unsafe access refused by the sandbox: " if "unsafe" in detail else \
                "undefined variable: "
            message = prefix + _undefined(detail, known)
        elif isinstance(exc, jinja2.TemplateNotFound):
            message = exc.message or f"template {exc.name} not found"
        elif isinstance(exc, RecursionError):
            message = ("recursion too deep: a template that includes itself or a macro "
                       "that calls itself without end")
        elif isinstance(exc, MemoryError):
            message = "out of memory while rendering (a huge repetition or number?)"
        else:
            message = f"{type(exc).__name__}: {exc}"
    return ConfigError([Problem(message, path, line, node)])


_UNDEFINED = re.compile(r"'(\w+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"'[\w.]*NodeView object' has no attribute '(\w+)'")


def _undefined(detail: str, known: Iterable[str]) -> str:
    """Jinja2's message about an undefined name, in the template's own words: `node` for
    the node's view (never an internal class name), and the nearest valid name."""
    attribute = _NO_ATTRIBUTE.fullmatch(detail)
    if attribute is not None:
        return f"node has no attribute {attribute.group(1)!r}" + did_you_mean(
            attribute.group(1), NodeView.__slots__)
    variable = _UNDEFINED.fullmatch(detail)
    if variable is not None:
        return detail + did_you_mean(variable.group(1), known)
    return detail


def _template_frame(tb: types.TracebackType | None) -> tuple[str, int] | None:
    """The innermost traceback frame that belongs to a template (Jinja2 rewrites these)."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(f"{TEMPLATES_DIR}/"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def tree_entries(snapshot: Snapshot, source: str) -> list[str]:
    """Every file under `templates/<source>`, relative to it, sorted."""
    base = f"{TEMPLATES_DIR}/{source}"
    return sorted(path[len(base) + 1:] for path in files_under(snapshot, base)
                  if snapshot.is_file(path))


def render_node(renderer: Renderer, node: NodeConfig, only: Collection[str] | None = None
                ) -> tuple[list[RenderedFile], list[Problem]]:
    """Desired content of the file and tree actions of `node` (those in `only`); problems."""
    files: list[RenderedFile] = []
    problems: list[Problem] = []
    snapshot = renderer.fleet.snapshot
    for action in node.actions:
        if only is not None and action.id not in only:
            continue
        try:
            if isinstance(action, FileAction):
                files.append(_render_file(renderer, node, action))
            elif isinstance(action, TreeAction):
                entries = renderer.tree(action.source)
                if entries is None:
                    raise ConfigError([Problem(
                        f"tree source {TEMPLATES_DIR}/{action.source} is not a directory",
                        action.origin.path, action.origin.line, node.name, action.id)])
                for rel in entries:
                    name = f"{action.source}/{rel}"
                    if rel.endswith(".j2"):
                        path = posixpath.join(action.path, rel[: -len(".j2")])
                        files.append(_render_template(renderer, node, action, path, name))
                    else:
                        path = posixpath.join(action.path, rel)
                        files.append(RenderedFile(path, action,
                                                  snapshot.read(f"{TEMPLATES_DIR}/{name}"),
                                                  f"{TEMPLATES_DIR}/{name}"))
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(_same_path_twice(files, node.name))
    return files, problems


def _same_path_twice(files: list[RenderedFile], node: str) -> list[Problem]:
    """A tree can lay a file where another action manages one: refuse the collision."""
    seen: dict[str, RenderedFile] = {}
    problems = []
    for item in files:
        first = seen.setdefault(item.path, item)
        if first is not item:
            origin = item.action.origin
            problems.append(Problem(f"{item.path} is managed twice: by {item.action.id} and "
                                    f"{first.action.id} (at {first.action.origin})",
                                    origin.path, origin.line, node, item.action.id))
    return problems


def _render_file(renderer: Renderer, node: NodeConfig, action: FileAction) -> RenderedFile:
    if action.ensure == "absent":
        return RenderedFile(action.path, action, None, "absent")
    if action.template is not None:
        _check_exists(renderer, node, action, action.template, "template")
        return _render_template(renderer, node, action, action.path, action.template)
    if action.source is not None:
        path = f"{TEMPLATES_DIR}/{action.source}"
        snapshot = renderer.fleet.snapshot
        _check_exists(renderer, node, action, action.source, "source file")
        return RenderedFile(action.path, action, snapshot.read(path), path)
    return RenderedFile(action.path, action, (action.content or "").encode(), "inline")


def _render_template(
    renderer: Renderer, node: NodeConfig, action: FileAction | TreeAction, path: str, name: str
) -> RenderedFile:
    """One template of an action, with the action's own variables; without the node's
    facts, marked with the facts it shows as placeholders or could not decide on."""
    unknown: set[str] = set()
    source = f"{TEMPLATES_DIR}/{name}"
    try:
        content = renderer.render(node, name, action.vars, unknown).encode()
    except facts_view.FactsUnknown as exc:
        renderer.check_secrets(node, action, name)
        return RenderedFile(path, action, None, source, tuple(sorted(unknown | exc.facts)),
                            renderer.inputs_digest(node, name, action.vars))
    renderer.check_secrets(node, action, name)
    return RenderedFile(path, action, content, source, tuple(sorted(unknown)))


def _check_exists(
    renderer: Renderer, node: NodeConfig, action: FileAction, rel: str, what: str
) -> None:
    """A missing (or escaping) template or source is reported at the action's line."""
    path = f"{TEMPLATES_DIR}/{rel}"
    if path in renderer._present:
        return
    snapshot = renderer.fleet.snapshot
    try:
        found = snapshot.is_file(path)
    except ConfigError as exc:
        raise ConfigError([Problem(p.message, action.origin.path, action.origin.line,
                                   node.name, action.id) for p in exc.problems]) from None
    if not found:
        missing = "is a directory, not a file" if snapshot.is_dir(path) else "not found"
        raise ConfigError([Problem(f"{what} {path} {missing}", action.origin.path,
                                   action.origin.line, node.name, action.id)])
    renderer._present.add(path)
