"""Templates imported `with context` are run once per node, not once per file.

`{% import 'common/macros.j2' as m with context %}` makes Jinja2 run the imported
template again for every file that imports it, to build a module (its macros) around
the importing file's context. What that module does depends only on the template and
on the values it reads by name from the context, with everything it includes, imports
or extends (`Renderer.referenced`): the compiled code reads nothing else of it. So two
imports that would resolve every one of those names to the very same objects get the
same module. Every file of one node resolves `node`, the node's variables and the
globals to the same objects, so the node's files share one module; a name that differs
(an action's own variable, a decrypted secret, the `facts` of a node whose facts are
unknown, a `set` before the import) builds a module of its own. A template that
includes one by a computed name reads what cannot be known, and one that includes a
template that does not load fails only where that include is run: either is run every
time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import repeat
from typing import Any

import jinja2
from jinja2.environment import TemplateModule
from jinja2.utils import missing

from reconciler.errors import ConfigError

# The variables a template reads by name (with what it includes, transitively), and
# whether it includes one by a computed name.
Reads = Callable[[str], tuple[frozenset[str], bool]]


class SharedModules:
    """The modules built for the node being rendered, by template and by the identity
    of each value they read."""

    def __init__(self, reads: Reads) -> None:
        self._reads = reads
        self._names: dict[str, tuple[str, ...] | None] = {}
        # Each module with the values its key names by `id`: kept with it, they cannot be
        # freed while it is, so no other object can take one of their ids.
        self._kept: dict[tuple[object, ...], tuple[tuple[Any, ...], TemplateModule]] = {}

    def clear(self) -> None:
        """Forget the modules (a new node is rendered: its `node` differs anyway)."""
        self._kept.clear()

    def module(self, template: jinja2.Template, name: str, values: dict[str, Any],
               locals: Mapping[str, Any] | None) -> TemplateModule:
        """What `template.make_module(values, True, locals)` builds (`name` is the
        template's), built once for each set of values the template reads."""
        if name not in self._names:
            try:
                read, dynamic = self._reads(name)
            except ConfigError:  # it includes one that does not load: only a call may fail
                read, dynamic = frozenset(), True
            self._names[name] = None if dynamic else tuple(sorted(read))
        names = self._names[name]
        if names is None:
            return TemplateModule(template, template.new_context(values, True, locals))
        resolved = tuple(map(values.get, names, repeat(missing))) if not locals \
            else tuple(_resolve(var, values, locals) for var in names)
        key = (name, *map(id, resolved))
        found = self._kept.get(key)
        if found is None:
            module = TemplateModule(template, template.new_context(values, True, locals))
            found = self._kept[key] = (resolved, module)
        return found[1]


def _resolve(name: str, values: Mapping[str, Any], locals: Mapping[str, Any] | None) -> Any:
    """The value `name` has in a context made of `values` and `locals` (`new_context`'s
    rule: a local that is not `missing` hides the value)."""
    if locals:
        value = locals.get(name, missing)
        if value is not missing:
            return value
    return values.get(name, missing)


class SharingTemplate(jinja2.Template):
    """A template whose imports `with context` go through its environment's
    `shared_modules`, when it has some."""

    def make_module(self, vars: dict[str, Any] | None = None, shared: bool = False,
                    locals: Mapping[str, Any] | None = None) -> TemplateModule:
        modules: SharedModules | None = getattr(self.environment, "shared_modules", None)
        if modules is None or not shared or vars is None or self.name is None:
            return super().make_module(vars, shared, locals)
        return modules.module(self, self.name, vars, locals)
