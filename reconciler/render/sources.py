"""What a template's text says about what it reads: the variables it reads by name, the
templates it includes, whether it lists the fleet's nodes; read once per text in a
process (a plan's two revisions mostly hold the same templates, and what they read is
asked several ways: secrets, dependency records, digests)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import jinja2
from jinja2 import meta, nodes


@dataclass(frozen=True)
class TemplateSource:
    """One template's text, and what it says: the variables it reads by name, the
    templates it includes, imports or extends (None for one named by a computed
    expression), and whether it calls `nodes()`."""

    text: str
    includes: tuple[str | None, ...]
    lists_nodes: bool
    tree: nodes.Template = field(repr=False, compare=False)

    @functools.cached_property
    def variables(self) -> frozenset[str]:
        """Worked out when first asked: it takes a pass of code generation, and a plan
        asks it of few templates (those imported with context, those of nodes with
        secrets) while it reads what every template includes."""
        return frozenset(meta.find_undeclared_variables(self.tree))


# What each template text says, for every renderer in the process; emptied when it
# grows this large.
_SOURCES: dict[str, TemplateSource] = {}
_MOST_SOURCES = 4096


def read_source(env: jinja2.Environment, text: str) -> TemplateSource:
    """What template `text` says, parsed by `env` (every renderer's environment parses
    alike) the first time the process meets that text."""
    found = _SOURCES.get(text)
    if found is None:
        tree = env.parse(text)
        if len(_SOURCES) >= _MOST_SOURCES:
            _SOURCES.clear()
        found = _SOURCES[text] = TemplateSource(
            text, tuple(meta.find_referenced_templates(tree)),
            any(n.name == "nodes" for n in tree.find_all(nodes.Name)), tree)
    return found
