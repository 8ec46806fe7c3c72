"""Encrypted variables at render time: how their values are obtained — decrypted with
the node's identity on the node, a placeholder in `validate`, `plan` and `render`, where
no one decrypts.

A template sees an encrypted variable only if it reads it by name (its own text or what
it includes); any other encrypted value is left out of its context, so nothing is
decrypted that no file needs (`usage` says which a node's templates read).
"""

from __future__ import annotations

from typing import Protocol

from reconciler.compile.nodeconfig import NodeConfig, Variable
from reconciler.secrets.sealed import Sealed


class Unsealer(Protocol):
    """Turns a node's encrypted variable into the text its templates see."""

    def unseal(self, node: str, variable: Variable, sealed: Sealed) -> str: ...


class Placeholders:
    """No decryption: each encrypted value renders as `ENCRYPTED-<value id>`, which
    changes exactly when the value may have (validate, plan and render use it)."""

    def unseal(self, node: str, variable: Variable, sealed: Sealed) -> str:
        return sealed.placeholder


def sealed_variables(node: NodeConfig) -> dict[str, Sealed]:
    """The node's variables whose winning value is encrypted."""
    return {name: var.value for name, var in node.variables.items()
            if isinstance(var.value, Sealed)}
