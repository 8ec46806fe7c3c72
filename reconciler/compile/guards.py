"""Guard rails: fleet.xml names the paths (and action kinds) only some classes may manage.

    <guard path="/etc/sudoers.d" allow="base"/>
    <guard path="/root/.ssh"/>                     (no class at all)
    <guard kind="command" allow="base database"/>

A merge request that adds `<file path="/etc/sudoers.d/me">` to the web class, or a
command that could write anywhere, is refused at its line by validate, the hooks and
every node, so a change cannot quietly give itself root. An action is judged by the
class that declares it (a mixin by its own name): moving it into an allowed class, or
allowing its class, is a change of fleet.xml that review sees.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.compile.edits import PATH_ACTIONS, edited_paths
from reconciler.compile.nodeconfig import (
    Action,
    AuthorizedKeysAction,
    DirectoryAction,
    Origin,
    TreeAction,
)
from reconciler.compile.xmlload import XmlDoc
from reconciler.errors import Problem

GUARD = "guard"


@dataclass(frozen=True)
class Guard:
    """A path prefix, or an action kind, that only the `allow`ed classes may manage."""

    path: str | None
    kind: str | None
    allow: frozenset[str]
    origin: Origin

    def what(self) -> str:
        return f"{self.path} and below" if self.path is not None else f"<{self.kind}> actions"


def parse(doc: XmlDoc, problems: list[Problem]) -> tuple[Guard, ...]:
    """The `<guard>` elements of fleet.xml (the schema checked their attributes)."""
    guards = []
    for element in doc.root.iterchildren(GUARD):
        path, kind = element.get("path"), element.get("kind")
        if (path is None) == (kind is None):
            problems.append(doc.problem(element, "<guard> takes path= or kind=, one of them"))
            continue
        if path is not None:
            normal = posixpath.normpath(path)
            if not path.startswith("/") or normal != path or normal == "/":
                problems.append(doc.problem(element, f"<guard> path {path!r} must be an "
                                                     "absolute, canonical path below /"))
                continue
        allow = frozenset(element.get("allow", "").split())
        guards.append(Guard(path, kind, allow, doc.origin(element)))
    return tuple(guards)


def managed_paths(action: Action) -> tuple[str, ...]:
    """The node paths an action writes, as far as the config says (a user's default
    authorized_keys is taken to be under /root for root, /home/USER for others)."""
    own = (action.path,) if isinstance(action, PATH_ACTIONS) else ()
    keys: tuple[str, ...] = ()
    if isinstance(action, AuthorizedKeysAction) and action.path is None:
        home = "/root" if action.user == "root" else f"/home/{action.user}"
        keys = (f"{home}/.ssh/authorized_keys",)
    return (*own, *edited_paths(action), *keys)


def _reaches(action: Action, path: str, prefix: str) -> bool:
    """Whether the action's `path` is the prefix or below it, or (a tree, a purged
    directory) lays down or removes entries that may be."""
    if path == prefix or path.startswith(prefix + "/"):
        return True
    spreads = isinstance(action, TreeAction) or (
        isinstance(action, DirectoryAction) and action.purge)
    return spreads and (path == "/" or prefix.startswith(path + "/"))


def check(guards: Iterable[Guard], actions: Iterable[Action], node: str) -> list[Problem]:
    """Every action that manages what a guard keeps from its class, at its line."""
    problems = []
    rails = tuple(guards)
    for action in actions:
        for guard in rails:
            if action.declared_in in guard.allow:
                continue
            if guard.kind is not None:
                hit = action.kind == guard.kind
            else:
                assert guard.path is not None
                hit = any(_reaches(action, p, guard.path) for p in managed_paths(action))
            if hit:
                allowed = ", ".join(sorted(guard.allow)) or "no class"
                problems.append(Problem(
                    f"class {action.declared_in} may not manage {guard.what()}: fleet.xml "
                    f"line {guard.origin.line} allows {allowed}", action.origin.path,
                    action.origin.line, node, action.id))
                break
    return problems
