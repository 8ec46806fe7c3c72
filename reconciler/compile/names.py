"""Node names: `class-NN.product.cluster.domain`, parsed and formatted in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_HOST_RE = re.compile(r"^(?P<cls>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-(?P<num>[0-9]+)$")


class NodeNameError(ValueError):
    """A string that is not a valid node name."""


@dataclass(frozen=True, order=True)
class NodeName:
    """The parts of a node name; `str()` gives the fully qualified form."""

    cls: str
    number: int
    product: str
    cluster: str
    domain: str
    width: int = 2

    @property
    def host(self) -> str:
        return f"{self.cls}-{self.number:0{self.width}d}"

    @property
    def fqdn(self) -> str:
        return f"{self.host}.{self.product}.{self.cluster}.{self.domain}"

    def __str__(self) -> str:
        return self.fqdn


def parse(name: str) -> NodeName:
    """Parse `web-api-12.tickets.chi1.sa`; the class is everything before the last hyphen."""
    labels = name.split(".")
    if len(labels) < 4:
        raise NodeNameError(
            f"bad node name {name!r}: expected class-NN.product.cluster.domain"
        )
    host, product, cluster = labels[0], labels[1], labels[2]
    domain = ".".join(labels[3:])
    match = _HOST_RE.match(host)
    if not match:
        raise NodeNameError(f"bad node name {name!r}: first label must be class-NN")
    for label in [product, cluster, *labels[3:]]:
        if not _LABEL_RE.match(label):
            raise NodeNameError(f"bad node name {name!r}: bad label {label!r}")
    digits = match.group("num")
    return NodeName(
        cls=match.group("cls"),
        number=int(digits),
        product=product,
        cluster=cluster,
        domain=domain,
        width=len(digits),
    )


def make(
    cls: str, number: int, product: str, cluster: str, domain: str, width: int = 2
) -> NodeName:
    """Build a node name from its parts (used to expand node ranges)."""
    return NodeName(cls, number, product, cluster, domain, width)
