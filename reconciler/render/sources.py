"""What a template's text says about what it reads: the variables it reads by name, the
templates it includes, whether it lists the fleet's nodes; read once per text in a
process (a plan's two revisions mostly hold the same templates, and what they read is
asked several ways: secrets, dependency records, digests)."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from jinja2 import meta


@dataclass(frozen=True)
class TemplateSource:
    """One template's text, and what it says: the variables it reads by name, the
    templates it includes, imports or extends (None for one named by a computed
    expression), and whether it calls `nodes()`."""

    text: str
    variables: frozenset[str]
    includes: tuple[str | None, ...]
    lists_nodes: bool


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
            text, frozenset(meta.find_undeclared_variables(tree)),
            tuple(meta.find_referenced_templates(tree)),
            any(n.name == "nodes" for n in tree.find_all(jinja2.nodes.Name)))
    return found
