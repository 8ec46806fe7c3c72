"""What a template's text says about what it reads: the variables it reads by name, the
templates it includes, whether it lists the fleet's nodes; read once per text in a
process (a plan's two revisions mostly hold the same templates, and what they read is
asked several ways: secrets, dependency records, digests), and kept between runs with
the compiled templates (render/bytecode.py): parsing them again cost each of a plan's
workers a tenth of its time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

import jinja2
from jinja2 import meta, nodes

# What a text says, as kept between runs: the templates it includes (None for one named
# by a computed expression), whether it calls `nodes()`, and the variables it reads by
# name (None until they were asked for).
Analysis = tuple[tuple[str | None, ...], bool, frozenset[str] | None]


class KeptAnalyses(Protocol):
    """Analyses kept between runs, by the digest of the template's text (`text_digest`)."""

    def analysis(self, digest: str) -> Analysis | None: ...

    def keep_analysis(self, digest: str, analysis: Analysis) -> None: ...


class TemplateSource:
    """One template's text, and what it says: the variables it reads by name, the
    templates it includes, imports or extends (None for one named by a computed
    expression), and whether it calls `nodes()`."""

    __slots__ = ("_parse", "_tree", "_variables", "digest", "includes", "lists_nodes", "text")

    def __init__(self, text: str, digest: str, analysis: Analysis,
                 parse: Callable[[str], nodes.Template], tree: nodes.Template | None) -> None:
        self.text = text
        self.digest = digest
        self.includes, self.lists_nodes, self._variables = analysis
        self._parse = parse
        self._tree = tree

    @property
    def variables(self) -> frozenset[str]:
        """Worked out when first asked: it takes a pass of code generation, and a plan
        asks it of few templates (those imported with context, those of nodes with
        secrets) while it reads what every template includes."""
        if self._variables is None:
            tree = self._tree if self._tree is not None else self._parse(self.text)
            self._variables = frozenset(meta.find_undeclared_variables(tree))
            self._tree = None
        return self._variables

    def analysis(self) -> Analysis:
        """What is known of the text, to keep for the next run."""
        return self.includes, self.lists_nodes, self._variables


def text_digest(text: str) -> str:
    """What a template's text is kept by: the checksum Jinja2 keeps its compiled code
    with (render/bytecode.py drops what no compiled template's text says)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# What each template text says, for every renderer in the process; emptied when it
# grows this large.
_SOURCES: dict[str, TemplateSource] = {}
_MOST_SOURCES = 4096


def read_source(env: jinja2.Environment, text: str,
                kept: KeptAnalyses | None = None) -> TemplateSource:
    """What template `text` says, parsed by `env` (every renderer's environment parses
    alike) the first time the process meets that text, unless `kept` holds it."""
    found = _SOURCES.get(text)
    if found is None:
        digest = text_digest(text)
        known = kept.analysis(digest) if kept is not None else None
        if known is not None:
            found = TemplateSource(text, digest, known, env.parse, None)
        else:
            tree = env.parse(text)
            found = TemplateSource(
                text, digest, (tuple(meta.find_referenced_templates(tree)),
                               any(n.name == "nodes" for n in tree.find_all(nodes.Name)), None),
                env.parse, tree)
        if len(_SOURCES) >= _MOST_SOURCES:
            _SOURCES.clear()
        _SOURCES[text] = found
    return found
