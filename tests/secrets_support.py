"""A small config repo with age keys, for the secret tests.

Product `shop` sets `db_password` for every node of the product, but only the
databases render it (a secret file); the proxies resolve it and never read it, so
they must not be able to decrypt it. Each node and the admin `alice` have a real age
identity under `identities/` (outside the repo), as `reconciler bootstrap` and
`age-keygen` would make them.
"""

from __future__ import annotations

from pathlib import Path

from clirun import reconciler
from configrepo import CliResult, Workspace, class_xml, fleet_xml

from reconciler.secrets import age

PASSWORD = "correct-horse-battery-staple"
DB = ("db-01.shop.c1.sa", "db-02.shop.c1.sa")
PROXIES = ("proxy-01.shop.c1.sa", "proxy-02.shop.c1.sa")


def fleet_text(db_count: int = 2, value: str = f'secret="true">{PASSWORD}</var>') -> str:
    return fleet_xml(
        '  <defaults><policy max-severity="restart"/></defaults>\n'
        '  <vars product="shop">\n'
        f'    <var name="db_password" {value}\n'
        '  </vars>\n'
        f'  <nodes class="db" product="shop" cluster="c1" count="{db_count}"/>\n'
        '  <nodes class="proxy" product="shop" cluster="c1" count="2"/>\n'
    )


FILES: dict[str, str] = {
    "fleet.xml": fleet_text(),
    "classes/db.xml": class_xml(
        "db", '  <file path="/etc/db/password.conf" template="db/password.conf.j2" '
              'secret="true"/>\n'),
    "classes/proxy.xml": class_xml(
        "proxy", '  <file path="/etc/proxy.conf" template="proxy/proxy.conf.j2"/>\n'),
    "templates/db/password.conf.j2": "password = {{ db_password }}\n",
    "templates/proxy/proxy.conf.j2": "upstream = db-01.shop.c1.sa\n",
}


class SecretRepo:
    """The repo, its keys, and the identities that go with them."""

    def __init__(self, ws: Workspace, files: dict[str, str] | None = None) -> None:
        self.ws = ws
        self.identities = ws.tmp / "identities"
        self.identities.mkdir()
        self.path = ws.make_repo(files or FILES, commit=False)
        self.add_admin("alice")
        for node in (*DB, *PROXIES):
            self.add_node_key(node)

    def identity(self, who: str) -> Path:
        return self.identities / f"{who}.key"

    def _new_identity(self, who: str) -> str:
        pair = age.generate()
        target = self.identity(who)
        if target.exists():
            target.unlink()
        age.write_identity(str(target), pair, f"test identity of {who}")
        return pair.recipient

    def add_admin(self, name: str) -> None:
        key = self._new_identity(name)
        self.ws.write(self.path, {f"keys/admins/{name}.age.pub": key + "\n"})

    def add_node_key(self, node: str) -> None:
        """A new identity for `node` (a rotation when it had one) and its public key."""
        key = self._new_identity(node)
        self.ws.write(self.path, {f"keys/nodes/{node}/age.pub": key + "\n"})

    def cli(self, *args: str, stdin: str | None = None) -> CliResult:
        done = reconciler(args, env={**self.ws.env, "COLUMNS": "200"}, cwd=self.path,
                          stdin=stdin)
        return CliResult(done.returncode, done.stdout, done.stderr)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def decrypt_as(self, who: str, rel: str) -> str | None:
        """The plain text of ciphertext `rel` with `who`'s identity, or None when that
        identity cannot decrypt it (pyrage, not reconciler, does the trying)."""
        try:
            plain = age.decrypt((self.path / rel).read_bytes(),
                                age.read_identities(str(self.identity(who))))
        except age.AgeError:
            return None
        return plain.decode()


CIPHERTEXT = "secrets/db_password/product=shop.age"
RECIPIENTS = "secrets/db_password/product=shop.recipients"
