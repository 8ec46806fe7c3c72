"""Secrets only their nodes can read: age ciphertext in the config repo, encrypted to
exactly the nodes that use each value (plus the operators), decrypted on the node in
memory at render time.

`age` wraps pyrage (the age format, so Debian's `age` command interoperates); `sealed`
is a secret value as the repo holds it; `keys` the public keys of nodes and operators;
`audience` which nodes need which ciphertext; `check` what `validate` enforces;
`xmledit`, `workflow` what `reconciler secret` changes; `unseal` decryption on the node;
`digest` the keyed hash a node records instead of a secret file's sha256.
"""
