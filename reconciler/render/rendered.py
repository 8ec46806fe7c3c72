"""What rendering makes of one managed file, in a module of its own: the plan, the
actions and the run's records use it without loading the template engine (jinja2,
the compiler), which a run that renders nothing never needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.compile.nodeconfig import FileAction, TreeAction


@dataclass(frozen=True)
class RenderedFile:
    """The desired content of one managed file (None when it should be absent).

    Rendered without the node's facts, `unknown_facts` names the facts its content
    shows as placeholders; when its template had to decide on one, it could not be
    rendered at all: `inputs` then holds the digest of everything else it depends on
    (`Renderer.inputs_digest`) and `content` is None.
    """

    path: str
    action: FileAction | TreeAction
    content: bytes | None
    source: str  # where the content came from, for reports: "templates/proxy/x.j2", "inline"
    unknown_facts: tuple[str, ...] = ()
    inputs: str | None = None

    @property
    def undecided(self) -> bool:
        """Not rendered: its template decides on facts this render did not know."""
        return self.inputs is not None
