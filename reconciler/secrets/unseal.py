"""Decryption on the node: the node's own age identity, in memory, at render time.

The identity file is read the first time a template needs an encrypted value (a node
that renders none needs no identity). A value the node cannot decrypt refuses the
whole commit; the message names the variable and the ciphertext, never a value.
"""

from __future__ import annotations

from pyrage import x25519

from reconciler.compile.nodeconfig import Variable
from reconciler.errors import ConfigError, Problem
from reconciler.secrets.age import AgeError, decrypt, read_identities
from reconciler.secrets.sealed import Sealed


class IdentityUnsealer:
    """Decrypts the encrypted variables a node's templates read, each once per run."""

    def __init__(self, identity_path: str) -> None:
        self.identity_path = identity_path
        self._identities: list[x25519.Identity] | None = None
        self._plain: dict[str, str] = {}

    def _problem(self, node: str, variable: Variable, sealed: Sealed, why: str) -> ConfigError:
        origin = variable.set_by.origin
        return ConfigError([Problem(
            f"cannot decrypt secret variable {variable.name!r} ({sealed.path}): {why}",
            origin.path, origin.line, node)])

    def unseal(self, node: str, variable: Variable, sealed: Sealed) -> str:
        found = self._plain.get(sealed.path)
        if found is not None:
            return found
        if self._identities is None:
            try:
                self._identities = read_identities(self.identity_path, private=True)
            except AgeError as exc:
                raise self._problem(node, variable, sealed, f"{exc} (this node's identity: "
                                    f"`reconciler bootstrap` makes one)") from None
        try:
            plain = decrypt(sealed.ciphertext, self._identities)
        except AgeError as exc:
            why = str(exc)
            if "not a recipient" in why or "none of the identities" in why:
                why = (f"this node ({self.identity_path}) is not one of its recipients: the "
                       f"config repo must encrypt it to this node's key (keys/nodes/{node}/"
                       f"age.pub, then `reconciler secret rekey`)")
            raise self._problem(node, variable, sealed, why) from None
        try:
            text = plain.decode("utf-8")
        except UnicodeDecodeError:
            raise self._problem(node, variable, sealed, "the value is not UTF-8 text") from None
        self._plain[sealed.path] = text
        return text
