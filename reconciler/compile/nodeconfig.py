"""The compiled configuration of one node: pydantic models at the compile boundary.

`NodeConfig` is what the compiler produces and every later stage consumes. Action
models are declarative: they say what should be, never how to get there.
"""

# No `from __future__ import annotations`: pydantic would evaluate each field's annotation
# from its string, compiling it first, in every process that builds these models.

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.severity import Severity as Severity  # where the rest of the engine finds it


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
    mode_from: str = "the built-in default"  # the <policy> (file:line) that set `mode`
    max_severity: Severity = Severity.RELOAD
    interval: int = 300
    splay: int | None = None  # None: the whole interval
    local_edits: Literal["overwrite", "hold"] = "overwrite"
    prune: bool = False
    window: str | None = None  # a change window (rollout/window.py), checked at compile
    window_severity: Severity = Severity.RESTART  # the ceiling inside the window


class Notify(Frozen):
    """A notification edge: when the source changes, fire `verb` on `target`."""

    target: str  # an action id, e.g. "service:nginx" or "command:rebuild"
    verb: Literal["reload", "restart", "run"] = "restart"


class Check(Frozen):
    """A check of the whole configuration an action's files make (`<check run=…/>`): a
    shell command that exits 0 when the daemon would accept what is live."""

    run: str
    timeout: float = 60.0
    origin: Origin


class ActionBase(Frozen):
    """Fields every action has. `id` is `kind:name` (path for filesystem actions).

    `vars` are the action's own variables (its `<var>` children, or the item of a
    `for-each`), seen by its templates over the node's; `item` names the for-each item
    it was expanded for ("apps[app7]"); `via` the classes that included the declaring
    class as a mixin, outermost first (empty when declared in the class chain itself).
    `checks` run after the action and everything notifying it are written, before it
    is started, reloaded or run (apply/checks.py).
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
    checks: tuple[Check, ...] = ()


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
    """A directory; with `purge`, entries no action declares are removed from it."""

    kind: Literal["directory"] = "directory"
    path: str
    ensure: Literal["present", "absent"] = "present"
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    purge: bool = False


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
    hold: bool | None = None  # apt-mark hold (True) or unhold (False); None leaves it alone


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


class GroupAction(ActionBase):
    """A local group (groupadd, groupmod, groupdel)."""

    kind: Literal["group"] = "group"
    name: str
    ensure: Literal["present", "absent"] = "present"
    gid: int | None = None
    system: bool = False  # only used when the group is created


class UserAction(ActionBase):
    """A local account (useradd, usermod, userdel). Attributes left out are not managed;
    `groups` is the exact set of supplementary groups. No password: accounts log in
    with keys (`authorized-keys`)."""

    kind: Literal["user"] = "user"
    name: str
    ensure: Literal["present", "absent"] = "present"
    uid: int | None = None
    group: str | None = None  # primary group: a name or a number
    groups: tuple[str, ...] | None = None
    home: str | None = None
    shell: str | None = None
    comment: str | None = None
    system: bool = False  # only used when the account is created


class AuthorizedKeysAction(ActionBase):
    """A user's SSH keys: the whole authorized_keys file (`exclusive`) or a managed block
    in it. `keys` are OpenSSH public key lines, inline or read from the repo."""

    kind: Literal["authorized-keys"] = "authorized-keys"
    user: str
    keys: tuple[str, ...] = ()
    key_sources: tuple[str, ...] = ()  # files under templates/ the keys were read from
    exclusive: bool = False
    path: str | None = None  # default: ~USER/.ssh/authorized_keys


class AptPin(Frozen):
    """One stanza of the source's preferences file: these packages at this priority."""

    packages: str  # apt_preferences "Package:" value: names and globs
    priority: int
    version: str | None = None  # pin a version instead of the source's origin


class AptSourceAction(ActionBase):
    """An APT source as a deb822 `.sources` file, its signing keyring from the repo, and
    pins in a preferences file of its own."""

    kind: Literal["apt-source"] = "apt-source"
    name: str
    ensure: Literal["present", "absent"] = "present"
    types: tuple[str, ...] = ("deb",)
    uris: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    key: str | None = None  # keyring under templates/: .asc (armored) or .gpg (binary)
    key_sha256: str | None = None  # of that keyring at this revision: a new key shows in plans
    pins: tuple[AptPin, ...] = ()


class MountAction(ActionBase):
    """A filesystem: its /etc/fstab entry and whether it is mounted. `severity` is that of
    mounting, unmounting or remounting; an fstab edit alone interrupts nothing."""

    kind: Literal["mount"] = "mount"
    path: str  # the mount point
    device: str = ""
    fstype: str = ""
    options: str = "defaults"
    dump: int = 0
    fsck_pass: int = 0
    state: Literal["mounted", "unmounted", "present", "absent"] = "mounted"


class LineAction(ActionBase):
    """One line in a file no other action owns: present (replacing the first line that
    `match`es) or absent (every line equal to it, or matching `match`)."""

    kind: Literal["line"] = "line"
    path: str
    name: str
    line: str = ""
    match: str | None = None  # a Python regular expression, searched in each line
    ensure: Literal["present", "absent"] = "present"


class BlockAction(ActionBase):
    """A block of lines between marker comments in a file no other action owns."""

    kind: Literal["block"] = "block"
    path: str
    name: str
    content: str = ""  # inline, or read from `source` under templates/
    source: str | None = None
    comment: str = "#"  # what starts a comment in that file, for the markers
    ensure: Literal["present", "absent"] = "present"


Action = Annotated[
    FileAction
    | TreeAction
    | DirectoryAction
    | SymlinkAction
    | PackageAction
    | ServiceAction
    | CommandAction
    | GroupAction
    | UserAction
    | AuthorizedKeysAction
    | AptSourceAction
    | MountAction
    | LineAction
    | BlockAction,
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


class HealthCheck(Frozen):
    """`<health>`: a command that says whether the node serves after a run changed it;
    a failure reverts the run's file changes (apply/health.py)."""

    name: str
    run: str
    timeout: float = 10.0  # seconds per attempt
    retries: int = 1  # attempts before the check counts as failed
    interval: float = 1.0  # seconds between attempts
    after: tuple[str, ...] = ()  # action ids the check exercises: not run while one is held
    origin: Origin


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
    health: tuple[HealthCheck, ...] = ()  # the class chain's and mixins', base first

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
