"""Encrypted secrets in the config repo: migrate, set, show, rekey, and what validate checks
without decrypting. Every ciphertext here is real age, tried with real identities."""

from __future__ import annotations

import pytest
from configrepo import Workspace
from secrets_support import CIPHERTEXT, DB, PASSWORD, PROXIES, RECIPIENTS, SecretRepo, fleet_text


@pytest.fixture
def repo(ws: Workspace) -> SecretRepo:
    return SecretRepo(ws)


@pytest.fixture
def migrated(repo: SecretRepo) -> SecretRepo:
    done = repo.cli("secret", "migrate")
    assert done.code == 0, done.err
    return repo


def test_migrate_encrypts_a_plain_secret_to_the_nodes_that_render_it(repo: SecretRepo) -> None:
    done = repo.cli("secret", "migrate")
    assert done.code == 0, done.err
    assert f"{CIPHERTEXT}: encrypted to 2 nodes (db-[01-02].shop.c1.sa) and 1 admin(s)" \
        in done.out
    assert f'<var name="db_password" encrypted="{CIPHERTEXT}"/>' in repo.read("fleet.xml")
    assert PASSWORD not in repo.read("fleet.xml")
    assert [repo.decrypt_as(who, CIPHERTEXT) for who in (*DB, "alice")] == [PASSWORD] * 3
    assert [repo.decrypt_as(proxy, CIPHERTEXT) for proxy in PROXIES] == [None, None]
    assert repo.cli("validate").code == 0


def test_migrate_changes_only_the_lines_of_the_secret(repo: SecretRepo) -> None:
    before = repo.read("fleet.xml").splitlines()
    repo.cli("secret", "migrate")
    after = repo.read("fleet.xml").splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert changed == [(f'    <var name="db_password" secret="true">{PASSWORD}</var>',
                        f'    <var name="db_password" encrypted="{CIPHERTEXT}"/>')]


def test_a_plain_secret_value_is_an_error_once_the_repo_has_age_keys(repo: SecretRepo) -> None:
    done = repo.cli("validate")
    assert done.code == 1
    assert "fleet.xml:4: secret variable 'db_password' has a plain-text value here: encrypt " \
        "it (`reconciler secret migrate`" in done.err
    assert PASSWORD not in done.out + done.err


def test_the_recipients_file_names_each_key_and_age_reads_it(migrated: SecretRepo) -> None:
    lines = migrated.read(RECIPIENTS).splitlines()
    labels = [line for line in lines if line.startswith(("# node", "# admin"))]
    assert labels == ["# admin alice", "# node db-01.shop.c1.sa", "# node db-02.shop.c1.sa"]
    assert sum(1 for line in lines if line.startswith("age1")) == 3


def test_a_new_database_node_cannot_decrypt_until_rekey(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {"fleet.xml": migrated.read("fleet.xml").replace(
        'cluster="c1" count="2"/>\n  <nodes class="proxy"',
        'cluster="c1" count="3"/>\n  <nodes class="proxy"')})
    migrated.add_node_key("db-03.shop.c1.sa")
    invalid = migrated.cli("validate")
    assert invalid.code == 1
    assert f"fleet.xml:4: secret variable 'db_password': {CIPHERTEXT} is not encrypted to " \
        "1 node (db-03.shop.c1.sa) using it; run `reconciler secret rekey`" in invalid.err
    assert migrated.decrypt_as("db-03.shop.c1.sa", CIPHERTEXT) is None
    rekeyed = migrated.cli("secret", "rekey", "--identity", str(migrated.identity("alice")))
    assert rekeyed.code == 0, rekeyed.err
    assert f"{CIPHERTEXT}: recipients changed: +1 node (db-03.shop.c1.sa)" in rekeyed.out
    assert migrated.decrypt_as("db-03.shop.c1.sa", CIPHERTEXT) == PASSWORD
    assert migrated.cli("validate").code == 0


def test_a_removed_database_node_cannot_read_the_rekeyed_secret(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {"fleet.xml": fleet_text(
        1, f'encrypted="{CIPHERTEXT}"/>'), "keys/nodes/db-02.shop.c1.sa/age.pub": None})
    invalid = migrated.cli("validate")
    assert "least privilege: secrets/db_password/product=shop.age is encrypted to 1 node " \
        "(db-02.shop.c1.sa) not using it" in invalid.err
    rekeyed = migrated.cli("secret", "rekey", "-i", str(migrated.identity("alice")))
    assert rekeyed.code == 0, rekeyed.err
    assert "recipients changed: -1 node (db-02.shop.c1.sa)" in rekeyed.out
    assert migrated.decrypt_as("db-02.shop.c1.sa", CIPHERTEXT) is None
    assert migrated.decrypt_as("db-01.shop.c1.sa", CIPHERTEXT) == PASSWORD
    assert migrated.cli("validate").code == 0


def test_a_rotated_node_key_is_caught_and_rekeyed(migrated: SecretRepo) -> None:
    migrated.add_node_key(DB[0])
    invalid = migrated.cli("validate")
    assert f"{CIPHERTEXT} is encrypted to an old key of 1 node ({DB[0]})" in invalid.err
    rekeyed = migrated.cli("secret", "rekey", "-i", str(migrated.identity("alice")))
    assert f"recipients changed: 1 key(s) rotated (node {DB[0]})" in rekeyed.out
    assert migrated.decrypt_as(DB[0], CIPHERTEXT) == PASSWORD


def test_rekey_with_nothing_to_do_needs_no_identity_and_writes_nothing(
    migrated: SecretRepo,
) -> None:
    before = migrated.read(CIPHERTEXT)
    done = migrated.cli("secret", "rekey")
    assert done.code == 0, done.err
    assert "nothing to re-encrypt" in done.out
    assert migrated.read(CIPHERTEXT) == before


def test_a_new_admin_is_added_by_rekey_and_a_removed_one_dropped(migrated: SecretRepo) -> None:
    migrated.add_admin("bob")
    migrated.ws.write(migrated.path, {"keys/admins/alice.age.pub": None})
    assert "admin bob cannot read" in migrated.cli("validate").err
    done = migrated.cli("secret", "rekey", "-i", str(migrated.identity("alice")))
    assert "recipients changed: +admin bob, -admin alice" in done.out, done.err
    assert migrated.decrypt_as("bob", CIPHERTEXT) == PASSWORD
    assert migrated.decrypt_as("alice", CIPHERTEXT) is None


def test_secret_set_reads_the_value_from_stdin_and_never_from_arguments(
    migrated: SecretRepo,
) -> None:
    refused = migrated.cli("secret", "set", "db_password", "--product", "shop", "s3cret")
    assert refused.code == 1 and "unexpected extra argument" in refused.err.lower()
    done = migrated.cli("secret", "set", "db_password", "--product", "shop", stdin="rotated-pw\n")
    assert done.code == 0, done.err
    assert migrated.decrypt_as(DB[1], CIPHERTEXT) == "rotated-pw"
    shown = migrated.cli("secret", "show", "db_password", "--node", DB[1],
                         "--identity", str(migrated.identity("alice")))
    assert shown.out == "rotated-pw\n"


def test_secret_set_at_a_node_layer_encrypts_to_that_node_only(migrated: SecretRepo) -> None:
    done = migrated.cli("secret", "set", "db_password", "--node", DB[0], stdin="only-db-01")
    assert done.code == 0, done.err
    path = f"secrets/db_password/node={DB[0]}.age"
    assert f'<node name="{DB[0]}">' in migrated.read("fleet.xml")
    assert migrated.decrypt_as(DB[0], path) == "only-db-01"
    assert migrated.decrypt_as(DB[1], path) is None
    # db-01 now takes its value from its own layer: the product-wide ciphertext must drop it
    invalid = migrated.cli("validate")
    assert f"least privilege: {CIPHERTEXT} is encrypted to 1 node ({DB[0]})" in invalid.err
    migrated.cli("secret", "rekey", "-i", str(migrated.identity("alice")))
    assert migrated.decrypt_as(DB[0], CIPHERTEXT) is None
    assert migrated.cli("validate").code == 0


def test_secret_set_refuses_nodes_without_a_key_and_writes_nothing(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {"keys/nodes/db-02.shop.c1.sa/age.pub": None})
    before = migrated.read(CIPHERTEXT)
    done = migrated.cli("secret", "set", "db_password", "--product", "shop", stdin="new")
    assert done.code == 1
    assert "no age key for 1 node (db-02.shop.c1.sa) needing these secrets" in done.err
    assert migrated.read(CIPHERTEXT) == before


def test_show_with_an_identity_that_is_not_a_recipient_fails(migrated: SecretRepo) -> None:
    done = migrated.cli("secret", "show", "db_password", "--node", DB[0],
                        "--identity", str(migrated.identity(PROXIES[0])))
    assert done.code == 1
    assert "none of the identities is a recipient" in done.err
    assert PASSWORD not in done.out + done.err


def test_explain_never_shows_an_encrypted_value(migrated: SecretRepo) -> None:
    done = migrated.cli("explain", DB[0], "db_password")
    assert done.code == 0 and "db_password = (secret)" in done.out
    assert "-----BEGIN" not in done.out


def test_a_ciphertext_that_is_not_age_is_refused_at_its_variable(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {CIPHERTEXT: "not age at all\n"})
    done = migrated.cli("validate")
    assert done.code == 1
    assert f"fleet.xml:4: secret variable 'db_password': {CIPHERTEXT}: not an armored age " \
        "file" in done.err


def test_a_ciphertext_with_more_keys_than_its_recipients_file_lists_is_refused(
    migrated: SecretRepo,
) -> None:
    lines = migrated.read(RECIPIENTS).splitlines()
    migrated.ws.write(migrated.path, {RECIPIENTS: "\n".join(lines[:-2]) + "\n"})
    done = migrated.cli("validate")
    assert f"{CIPHERTEXT} is encrypted to 3 X25519 key(s) but {RECIPIENTS} lists 2" in done.err


def test_key_files_are_checked(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {
        f"keys/nodes/{PROXIES[0]}/age.pub": "# proxy\nage1notakey\n",
        "keys/nodes/cache-01.shop.c1.sa/age.pub": migrated.read(
            f"keys/nodes/{PROXIES[1]}/age.pub"),
        "keys/admins/carol.pub": "x\n",
    })
    done = migrated.cli("validate")
    assert done.code == 1
    assert f"keys/nodes/{PROXIES[0]}/age.pub:2: not an age X25519 recipient" in done.err
    assert "keys/nodes/cache-01.shop.c1.sa: keys of cache-01.shop.c1.sa, which is not a node " \
        "of the fleet" in done.err
    assert "keys/admins/carol.pub: expected files named NAME.age.pub" in done.err


def test_two_nodes_sharing_one_key_is_an_error(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {
        f"keys/nodes/{PROXIES[1]}/age.pub": migrated.read(f"keys/nodes/{PROXIES[0]}/age.pub")})
    done = migrated.cli("validate")
    assert f"is shared by node {PROXIES[0]}, node {PROXIES[1]}: each needs its own" in done.err


def test_a_leftover_ciphertext_is_an_error(migrated: SecretRepo) -> None:
    migrated.ws.write(migrated.path, {"secrets/old/defaults.age": migrated.read(CIPHERTEXT)})
    done = migrated.cli("validate")
    assert "secrets/old/defaults.age: ciphertext that no <var encrypted=…> uses" in done.err


def test_migrate_refuses_a_secret_that_is_not_text(ws: Workspace) -> None:
    repo = SecretRepo(ws)
    repo.ws.write(repo.path, {"fleet.xml": fleet_text(
        value='secret="true" type="list"><item>a</item></var>')})
    done = repo.cli("secret", "migrate")
    assert done.code == 1
    assert "fleet.xml:4: secret variable 'db_password' is a list: only text values can be " \
        "encrypted" in done.err
    assert "secret=\"true\"" in repo.read("fleet.xml")


def commit(repo: SecretRepo, message: str) -> None:
    repo.ws.commit(repo.path, message)


def test_plan_says_recipients_changed_when_a_rekey_adds_a_node(migrated: SecretRepo) -> None:
    commit(migrated, "encrypted")
    migrated.ws.write(migrated.path, {"fleet.xml": fleet_text(3, f'encrypted="{CIPHERTEXT}"/>')})
    migrated.add_node_key("db-03.shop.c1.sa")
    migrated.cli("secret", "rekey", "-i", str(migrated.identity("alice")))
    commit(migrated, "db-03")
    done = migrated.cli("plan", "--base", "HEAD~1")
    assert done.code == 2, done.err
    assert f"secret db_password ({CIPHERTEXT}): recipients changed: +1 node " \
        "(db-03.shop.c1.sa)" in done.out
    assert "no node changes" in done.out  # same value: db-01 and db-02 render the same file
    assert PASSWORD not in done.out


def test_plan_says_secret_changed_for_a_new_value_and_shows_neither(migrated: SecretRepo) -> None:
    commit(migrated, "encrypted")
    migrated.cli("secret", "set", "db_password", "--product", "shop", stdin="new-value-42")
    commit(migrated, "rotate the password")
    outputs = [migrated.cli("plan", "--base", "HEAD~1", "--format", fmt)
               for fmt in ("text", "markdown", "json")]
    assert outputs[0].code == 2, outputs[0].err
    assert f"secret db_password ({CIPHERTEXT}): secret changed" in outputs[0].out
    assert "2 of 4 nodes change" in outputs[0].out
    assert "~ file /etc/db/password.conf (none): secret changed" in outputs[0].out
    assert all(PASSWORD not in o.out and "new-value-42" not in o.out for o in outputs)


BROKEN_IMPORT = {  # the databases' secret file imports a macro whose `if` is never closed
    "templates/db/password.conf.j2": '{% import "db/macros.j2" as m %}'
                                     "password = {{ db_password }}{{ m.port() }}\n",
    "templates/db/macros.j2": "{% macro port() %}\n{% if true %}5432\n{% endmacro %}\n"}


def test_a_syntax_error_in_a_template_a_secret_reader_imports_is_its_located_line(
        migrated: SecretRepo) -> None:
    # Which encrypted values a template reads is found by parsing what it imports: a
    # broken import reads as the template error it is, once per node, not as a traceback,
    # and the nodes it stops from being judged are not said to hold a secret they do not use.
    migrated.ws.write(migrated.path, BROKEN_IMPORT)
    done = migrated.cli("validate")
    assert done.code == 1 and "Traceback" not in done.err, done.err
    assert "templates/db/macros.j2:3: template syntax error: " in done.err
    assert "(node db-01.shop.c1.sa) (and 1 more nodes)" in done.err
    assert "least privilege" not in done.err


def test_rekey_refuses_while_a_template_does_not_parse_and_changes_nothing(
        migrated: SecretRepo) -> None:
    before = migrated.read(CIPHERTEXT), migrated.read(RECIPIENTS)
    migrated.ws.write(migrated.path, BROKEN_IMPORT)
    done = migrated.cli("secret", "rekey")
    assert done.code == 1 and "Traceback" not in done.err, done.err
    assert "templates/db/macros.j2:3: template syntax error: " in done.err
    assert (migrated.read(CIPHERTEXT), migrated.read(RECIPIENTS)) == before
