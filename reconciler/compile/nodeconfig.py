"""The compiled configuration of one node: pydantic models at the compile boundary.

`NodeConfig` is what the compiler produces and every later stage consumes. Action
models are declarative: they say what should be, never how to get there.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Severity(IntEnum):
    """How much an action can interrupt the service when it changes."""

    NONE = 0
    RELOAD = 1
    RESTART = 2
    REBOOT = 3

    @classmethod
    def parse(cls, word: str) -> Severity:
        try:
            return cls[word.upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {word!r} (expected none, reload, restart or reboot)"
            ) from None

    def __str__(self) -> str:
        return self.name.lower()


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Origin(Frozen):
    """Where something was declared: file and line in the config repo."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class Policy(Frozen):
    """Agent policy for a node, merged fleet defaults -> class chain -> node."""

    mode: Literal["audit", "change"] = "change"
    max_severity: Severity = Severity.RELOAD
    interval: int = 300
    splay: int = 60
    local_edits: Literal["overwrite", "hold"] = "overwrite"
    prune: bool = False


class Notify(Frozen):
    """A notification edge: when the source changes, fire `verb` on `target`."""

    target: str  # an action id, e.g. "service:nginx" or "command:rebuild"
    verb: Literal["reload", "restart", "run"] = "restart"


class ActionBase(Frozen):
    """Fields every action has. `id` is `kind:name` (path for filesystem actions).

    `vars` are the action's own variables (its `<var>` children, or the item of a
    `for-each`), seen by its templates over the node's; `item` names the for-each item
    it was expanded for ("apps[app7]"); `via` the classes that included the declaring
    class as a mixin, outermost first (empty when declared in the class chain itself).
    """

    id: str
    severity: Severity
    requires: tuple[str, ...] = ()
    notify: tuple[Notify, ...] = ()
    origin: Origin
    declared_in: str  # the class that declared it
    vars: dict[str, Any] = {}
    item: str | None = None
    via: tuple[str, ...] = ()


class FileAction(ActionBase):
    """A file from a template, inline content, or a verbatim copy from the repo."""

    kind: Literal["file"] = "file"
    path: str
    ensure: Literal["present", "absent"] = "present"
    template: str | None = None  # relative to templates/
    source: str | None = None  # relative to templates/, copied verbatim
    content: str | None = None  # inline, literal
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    validate_cmd: str | None = None  # "cmd %s", run on the new content before replace
    secret: bool = False


class TreeAction(ActionBase):
    """A directory of the repo laid over the node: `.j2` rendered, others copied."""

    kind: Literal["tree"] = "tree"
    path: str
    source: str  # directory relative to templates/
    mode: int | None = None
    dir_mode: int | None = None
    owner: str | None = None
    group: str | None = None
    secret: bool = False


class DirectoryAction(ActionBase):
    kind: Literal["directory"] = "directory"
    path: str
    ensure: Literal["present", "absent"] = "present"
    mode: int | None = None
    owner: str | None = None
    group: str | None = None


class SymlinkAction(ActionBase):
    kind: Literal["symlink"] = "symlink"
    path: str
    target: str = ""
    ensure: Literal["present", "absent"] = "present"
    owner: str | None = None
    group: str | None = None


class PackageAction(ActionBase):
    """A Debian package; `version` may be exact or a glob; `deb` a file under templates/."""

    kind: Literal["package"] = "package"
    name: str
    ensure: Literal["present", "absent"] = "present"
    version: str | None = None
    deb: str | None = None


class ServiceCommands(Frozen):
    """Shell commands for the `command` service backend."""

    status: str
    start: str
    stop: str
    reload: str | None = None
    restart: str | None = None
    enable: str | None = None
    disable: str | None = None
    is_enabled: str | None = None


class ServiceAction(ActionBase):
    kind: Literal["service"] = "service"
    name: str
    state: Literal["running", "stopped"] | None = "running"
    enabled: bool | None = None
    backend: Literal["systemd", "command"] = "systemd"
    commands: ServiceCommands | None = None


class CommandAction(ActionBase):
    """A guarded command: runs when its guards say so, or when notified if `refresh_only`."""

    kind: Literal["command"] = "command"
    name: str
    run: str
    creates: str | None = None
    unless: str | None = None
    onlyif: str | None = None
    refresh_only: bool = False
    timeout: float = 300.0
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()


Action = Annotated[
    FileAction
    | TreeAction
    | DirectoryAction
    | SymlinkAction
    | PackageAction
    | ServiceAction
    | CommandAction,
    Field(discriminator="kind"),
]

PATH_KINDS = frozenset({"file", "tree", "directory", "symlink"})


class Provenance(Frozen):
    """One layer that set a variable: which layer, where, and the value it gave."""

    layer: str  # "defaults", "class base", "cluster chi1", "class=proxy product=tickets", "node"
    origin: Origin
    value: Any
    secret: bool = False


class Variable(Frozen):
    """A resolved variable: its winning value and every layer that set it, general first."""

    name: str
    value: Any
    set_by: Provenance
    overrode: tuple[Provenance, ...] = ()
    secret: bool = False  # some layer declared it secret="true"


class NodeConfig(Frozen):
    """Everything one node should be, at one revision of the config repo."""

    name: str
    cls: str
    number: int
    product: str
    cluster: str
    domain: str
    class_chain: tuple[str, ...]  # most general first, the node's own class last
    variables: dict[str, Variable]
    policy: Policy
    actions: tuple[Action, ...]
    revision: str | None = None

    def secret_names(self) -> frozenset[str]:
        """Variables some layer marked secret: kept out of explain and of non-secret files."""
        return frozenset(name for name, var in self.variables.items() if var.secret)

    def values(self) -> dict[str, Any]:
        """Plain variable values, for rendering."""
        return {name: var.value for name, var in self.variables.items()}

    def action(self, action_id: str) -> Action | None:
        for candidate in self.actions:
            if candidate.id == action_id:
                return candidate
        return None
