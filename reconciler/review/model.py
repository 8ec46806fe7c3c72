"""The fleet plan as values: per-node differences, groups of nodes sharing them, and the
report `reconciler plan --format json` writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.compile.nodeconfig import Severity
from reconciler.secrets.plan import SecretChange

SeverityWord = Literal["none", "reload", "restart", "reboot"]

EXIT_NO_CHANGES = 0
EXIT_INVALID = 1
EXIT_CHANGES = 2


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AttrChange(_Model):
    """One attribute of an action that differs: `mode 0644 → 0640`. None means unset."""

    name: str
    old: str | None = None
    new: str | None = None


class FileChange(_Model):
    """A managed path whose desired content differs between base and head.

    `status`: `changed` (managed at both), `new` (managed only at head), `unmanaged`
    (managed only at base: left as it is on the node). `diff` is a unified diff, or
    None when `note` says why there is none (secret, binary, absent, facts unknown).
    """

    path: str
    action: str = Field(description="id of the file or tree action that manages the path")
    status: Literal["changed", "new", "unmanaged"]
    severity: SeverityWord
    diff: str | None = None
    note: str | None = None
    facts: tuple[str, ...] = Field(
        default=(), description="facts the node has not published that the diff shows as "
                                "placeholders, or that decide the content (then no diff)")


class ActionChange(_Model):
    """An action added, removed, or whose attributes (mode, owner, version, state...) changed.

    `policy` is a pseudo-action for the node's agent policy (mode, ceiling, interval...).
    """

    action: str
    status: Literal["added", "removed", "changed"]
    severity: SeverityWord
    attributes: tuple[AttrChange, ...] = ()


class NodeDiff(_Model):
    """Everything that differs for one node; equal values group nodes together."""

    files: tuple[FileChange, ...] = ()
    actions: tuple[ActionChange, ...] = ()
    base_problems: tuple[str, ...] = Field(
        (), description="problems met compiling or rendering this node at the base revision"
    )

    @property
    def empty(self) -> bool:
        return not (self.files or self.actions or self.base_problems)

    @property
    def severity(self) -> SeverityWord:
        return max_severity([*(f.severity for f in self.files),
                             *(a.severity for a in self.actions)])


class Group(_Model):
    """Nodes making the same change, shown once (review/grouping.py says when two changes
    are the same)."""

    nodes: tuple[str, ...]
    patterns: tuple[str, ...] = Field(
        description="the node list compressed, e.g. proxy-[01-40].tickets.chi1.sa")
    scope: str = Field(
        description="classes and clusters of the nodes, e.g. 'proxy, all clusters'")
    severity: SeverityWord
    changes: NodeDiff = Field(
        description="the first node's changes, with the parts that differ between the nodes "
                    "marked: ⟨node.name⟩ (and host, cls, product, cluster, number, var.NAME) "
                    "for each node's own values, ⟨per node⟩ for values that differ otherwise")
    marked: tuple[str, ...] = Field(
        (), description="the identity fields marked in `changes`, e.g. node.name")
    varies: tuple[str, ...] = Field(
        (), description="paths and actions whose change differs per node beyond identity")
    digests: dict[str, str] = Field(
        default_factory=dict,
        description="each node's exact changes as a sha256 of their JSON; `reconciler plan "
                    "--node NAME` shows them")


class Count(_Model):
    """Nodes that change out of all nodes, for one class or one cluster."""

    name: str
    changed: int
    total: int


class HeadProblem(_Model):
    """One distinct problem of the head revision and how many nodes share it (as `validate`)."""

    problem: str = Field(description="path:line: message")
    nodes: int


class PlanReport(_Model):
    """The fleet-wide plan between two revisions: the JSON of `reconciler plan --format json`."""

    base: str = Field(description="the base revision as given")
    head: str = Field(description="the head revision as given")
    base_commit: str | None
    head_commit: str | None
    valid: bool = Field(description="false when the head revision is invalid")
    head_problems: tuple[HeadProblem, ...] = ()
    base_problems: tuple[str, ...] = Field(
        (), description="the base revision does not load: nothing could be compared"
    )
    headline: str
    total_nodes: int = Field(description="nodes in the fleet at head")
    changed_nodes: int = Field(description="nodes present at both revisions whose config differs")
    severity: SeverityWord = Field(description="the highest severity any change carries")
    scope: str
    by_class: tuple[Count, ...] = ()
    by_cluster: tuple[Count, ...] = ()
    by_severity: dict[str, int] = Field(default_factory=dict)
    added_nodes: tuple[str, ...] = ()
    removed_nodes: tuple[str, ...] = ()
    groups: tuple[Group, ...] = ()
    added_groups: tuple[Group, ...] = Field(
        (), description="what the added nodes get, grouped like changes")
    secrets: tuple[SecretChange, ...] = Field(
        (), description="encrypted values whose value or recipients change")
    incremental: bool = Field(
        False, description="only the nodes and files the change touches were rendered: the "
                           "base's dependency records prove the rest unchanged")
    rendered_nodes: int = Field(0, description="nodes compiled and rendered for this plan")

    @property
    def exit_code(self) -> int:
        """0 nothing changes, 1 the head is invalid, 2 something changes."""
        if not self.valid:
            return EXIT_INVALID
        if self.changed_nodes or self.added_nodes or self.removed_nodes or self.base_problems \
                or self.secrets:
            return EXIT_CHANGES
        return EXIT_NO_CHANGES


def max_severity(words: Iterable[str]) -> SeverityWord:
    """The highest of some severity words ("none" for none)."""
    top = max((Severity.parse(w) for w in words), default=Severity.NONE)
    return severity_word(top)


def severity_word(severity: Severity) -> SeverityWord:
    word: SeverityWord = str(Severity(severity))  # type: ignore[assignment]
    return word
