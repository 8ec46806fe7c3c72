"""The compiler on the kinds that edit the node's own databases: accounts, keys, APT
sources, mounts, lines and blocks — what they parse into, and every mistake as
`path:line: message`."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from configrepo import BASIC, Workspace, class_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.nodeconfig import (
    AptPin,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
    DirectoryAction,
    GroupAction,
    LineAction,
    MountAction,
    NodeConfig,
    PackageAction,
    Severity,
    UserAction,
)
from reconciler.errors import ConfigError
from reconciler.source.snapshot import open_snapshot

Files = Mapping[str, str | bytes | None]
ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvqcTXRD8rp/wEDnIliVxVaWEguacID83zg3nCtARQ alice@sa"
BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH33JWguGX53hp2Fgql+l+rHFgUkxvVAckTM/Di8643G bob@sa"
ARMORED = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEaw\n-----END PGP PUBLIC KEY BLOCK-----\n"


def node_of(ws: Workspace, body: str, templates: Files | None = None) -> NodeConfig:
    files = {**BASIC, "classes/web.xml": class_xml("web", body, "base"), **(templates or {})}
    repo = ws.make_repo(files, commit=False)
    return compile_node(load_fleet(open_snapshot(str(repo), None)), "web-01.tickets.chi1.sa")


def problems_of(ws: Workspace, body: str, templates: Files | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        node_of(ws, body, templates)
    return [str(p) for p in caught.value.problems]


EVERY_NEW_KIND = f'''\
  <group name="ops" gid="2000" system="true"/>
  <user name="ops" uid="2000" group="ops" groups="adm sudo" home="/home/ops" shell="/bin/bash"
        comment="Operations"/>
  <authorized-keys user="ops" exclusive="true">
    <key>{ALICE}</key>
    <key source="keys/bob.pub"/>
  </authorized-keys>
  <apt-source name="sa" uris="https://apt.sa.example/debian" suites="bookworm"
              components="main contrib" architectures="amd64" key="apt/sa.asc">
    <pin packages="sa-*" priority="990"/>
    <pin packages="nginx" version="1.22.*" priority="1001"/>
  </apt-source>
  <mount path="/srv/data" device="LABEL=data" fstype="ext4" options="defaults,noatime" pass="2"/>
  <line path="/etc/hosts" name="apt" line="10.1.0.5 apt.sa" match="\\sapt\\.sa$"/>
  <block path="/etc/hosts" name="fleet" source="hosts.block"/>
  <directory path="/etc/nginx/sites-enabled" purge="true"/>
  <package name="nginx" hold="true"/>
'''


def test_every_new_kind_parses_with_its_attributes(ws: Workspace) -> None:
    config = node_of(ws, EVERY_NEW_KIND, {"templates/keys/bob.pub": f"# Bob\n{BOB}\n",
                                          "templates/apt/sa.asc": ARMORED,
                                          "templates/hosts.block": "10.1.0.11 app-11\n"})
    get = config.action
    group, user = get("group:ops"), get("user:ops")
    assert isinstance(group, GroupAction) and (group.gid, group.system) == (2000, True)
    assert isinstance(user, UserAction)
    assert (user.uid, user.group, user.groups, user.home, user.shell, user.comment) == \
        (2000, "ops", ("adm", "sudo"), "/home/ops", "/bin/bash", "Operations")
    assert user.severity == Severity.NONE
    keys = get("authorized-keys:ops")
    assert isinstance(keys, AuthorizedKeysAction)
    assert (keys.exclusive, keys.keys, keys.key_sources) == (True, (ALICE, BOB), ("keys/bob.pub",))
    source = get("apt-source:sa")
    assert isinstance(source, AptSourceAction)
    assert (source.uris, source.suites, source.components, source.architectures) == \
        (("https://apt.sa.example/debian",), ("bookworm",), ("main", "contrib"), ("amd64",))
    assert source.key_sha256 is not None and len(source.key_sha256) == 64
    assert source.pins == (AptPin(packages="sa-*", priority=990),
                           AptPin(packages="nginx", priority=1001, version="1.22.*"))
    mount = get("mount:/srv/data")
    assert isinstance(mount, MountAction)
    assert (mount.device, mount.fstype, mount.options, mount.fsck_pass, mount.state,
            mount.severity) == ("LABEL=data", "ext4", "defaults,noatime", 2, "mounted",
                                Severity.RESTART)
    line, block = get("line:/etc/hosts#apt"), get("block:/etc/hosts#fleet")
    assert isinstance(line, LineAction) and (line.line, line.match) == \
        ("10.1.0.5 apt.sa", r"\sapt\.sa$")
    assert isinstance(block, BlockAction) and block.content == "10.1.0.11 app-11\n"
    purged = get("directory:/etc/nginx/sites-enabled")
    assert isinstance(purged, DirectoryAction) and purged.purge
    nginx = get("package:nginx")
    assert isinstance(nginx, PackageAction) and nginx.hold is True


@pytest.mark.parametrize(("body", "message"), [
    ('<user name="9lives"/>', "<user>: user name '9lives' is not a valid account name"),
    ('<user name="ops" shell="bash"/>', "<user>: shell 'bash' must be an absolute path"),
    ('<user name="ops" comment="a:b"/>', "<user>: comment must not hold ':' or a newline"),
    ('<group name="ops" gid="4294967295"/>', "<group>: gid 4294967295 is out of range"),
    ('<apt-source name="sa" uris="https://a.example/d" suites="bookworm"/>',
     "<apt-source>: components= is needed unless the suite is a flat path ending in '/'"),
    ('<apt-source name="sa" uris="https://a.example/d" suites="./" components="main"/>',
     "<apt-source>: a flat repository (a suite ending in '/') takes no components="),
    ('<apt-source name="sa" uris="apt.example" suites="./"/>',
     "<apt-source>: 'apt.example' is not a URI (scheme:...)"),
    ('<apt-source name="sa" uris="file:/x" suites="./" key="k.txt"/>',
     "<apt-source>: key 'k.txt' must be an armored .asc or a binary .gpg keyring"),
    ('<mount path="/srv/x" device="/dev/vdb" fstype="ext4" options="a b"/>',
     "<mount>: options 'a b' must be one word"),
    ('<mount path="/srv/x" fstype="ext4"/>', "<mount>: device '' must be one word"),
    ('<line path="/etc/hosts" name="x"/>', "<line>: a present line needs line="),
    ('<line path="/etc/hosts" name="x" line="y" match="(unclosed"/>',
     "<line>: match= is not a valid regular expression"),
    ('<block path="/etc/hosts" name="x"/>', "<block>: a present block needs source= or <content>"),
    ('<directory path="/" purge="true"/>', "<directory>: path '/' is the root itself"),
    ('<package name="telnet" ensure="absent" hold="true"/>',
     "<package>: a package declared absent cannot be held"),
    (f'<authorized-keys user="ops"><key>{ALICE[:40]}</key></authorized-keys>',
     "<authorized-keys>: the key data does not hold a ssh-ed25519 key"),
    ('<authorized-keys user="ops"><key>ssh-foo AAAA x</key></authorized-keys>',
     "<authorized-keys>: unknown key type 'ssh-foo'"),
    ('<authorized-keys user="ops"><key>from="10.0.0.0/8",no-pty ssh-ed25519 AAAA@@ x</key>'
     '</authorized-keys>', "<authorized-keys>: the ssh-ed25519 key's base64 is damaged"),
])
def test_a_bad_attribute_is_an_error_at_its_line(ws: Workspace, body: str, message: str) -> None:
    found = problems_of(ws, f"  {body}\n")
    assert len(found) == 1 and found[0].startswith(f"classes/web.xml:2: {message}"), found


def test_a_broken_key_in_a_key_file_is_reported_at_that_files_line(ws: Workspace) -> None:
    found = problems_of(ws, '  <authorized-keys user="ops"><key source="keys/team.pub"/>'
                            '</authorized-keys>\n',
                        {"templates/keys/team.pub": f"{ALICE}\n\nssh-rsa AAAAB3Nz broken\n"})
    assert found == ["templates/keys/team.pub:3: the key data does not hold a ssh-rsa key: "
                     "'ssh-rsa AAAAB3Nz broken' (authorized-keys:ops)"]


def test_missing_repo_files_are_errors_at_their_actions(ws: Workspace) -> None:
    found = problems_of(ws, '  <authorized-keys user="ops"><key source="keys/gone.pub"/>'
                            '</authorized-keys>\n'
                            '  <apt-source name="sa" uris="file:/x" suites="./" '
                            'key="apt/gone.gpg"/>\n'
                            '  <block path="/etc/hosts" name="h" source="gone.block"/>\n')
    assert found == [
        "classes/web.xml:2: key file templates/keys/gone.pub not found (authorized-keys:ops)",
        "classes/web.xml:3: keyring templates/apt/gone.gpg not found (apt-source:sa)",
        "classes/web.xml:4: block source templates/gone.block not found (block:/etc/hosts#h)"]


def test_a_keyring_that_is_not_openpgp_is_refused(ws: Workspace) -> None:
    found = problems_of(ws, '  <apt-source name="sa" uris="file:/x" suites="./" key="sa.asc"/>\n',
                        {"templates/sa.asc": "not a key\n"})
    assert found == ["classes/web.xml:2: keyring templates/sa.asc is not an armored OpenPGP "
                     "public key (apt-source:sa)"]


def test_a_block_holding_its_own_marker_lines_is_refused(ws: Workspace) -> None:
    found = problems_of(ws, '  <block path="/etc/hosts" name="h"><content>'
                            '# END reconciler other\n</content></block>\n')
    assert found == ["classes/web.xml:2: the block's content holds a reconciler marker line "
                     "(block:/etc/hosts#h)"]


def test_an_edit_of_a_file_a_file_action_writes_whole_is_refused(ws: Workspace) -> None:
    found = problems_of(ws, '  <file path="/etc/hosts"><content>x\n</content></file>\n'
                            '  <line path="/etc/hosts" name="h" line="y"/>\n'
                            '  <file path="/etc/fstab"><content>x\n</content></file>\n'
                            '  <mount path="/srv/x" device="tmpfs" fstype="tmpfs"/>\n')
    assert found == [
        "classes/web.xml:4: line:/etc/hosts#h edits /etc/hosts, which file:/etc/hosts (line 2 "
        "of classes/web.xml) writes whole: keep one of them (line:/etc/hosts#h)",
        "classes/web.xml:7: mount:/srv/x edits /etc/fstab, which file:/etc/fstab (line 5 of "
        "classes/web.xml) writes whole: keep one of them (mount:/srv/x)"]


def test_two_lines_with_one_name_in_one_file_are_a_duplicate(ws: Workspace) -> None:
    found = problems_of(ws, '  <line path="/etc/hosts" name="h" line="a"/>\n'
                            '  <line path="/etc/hosts" name="h" line="b"/>\n')
    assert found == ["classes/web.xml:3: line:/etc/hosts#h is declared twice in this class "
                     "(also at line 2)"]


def test_an_unknown_attribute_of_a_new_kind_is_a_schema_error(ws: Workspace) -> None:
    found = problems_of(ws, '  <user name="ops" password="$6$x"/>\n')
    assert len(found) == 1 and found[0].startswith("classes/web.xml:2:")
    assert "password" in found[0]


OPERATORS = '''\
  <var name="operators" type="map">
    <entry key="alice" type="map"><entry key="uid" type="int">2001</entry></entry>
    <entry key="bob" type="map"><entry key="uid" type="int">2002</entry></entry>
  </var>
  <user for-each="operators" as="op" name="{op.key}" uid="{op.value.uid}" groups="sudo"/>
  <authorized-keys for-each="operators" as="op" user="{op.key}" exclusive="true"
                   requires="user:{op.key}"><key source="keys/{op.key}.pub"/></authorized-keys>
'''


def test_one_declaration_per_operator_reads_each_operators_key_file(ws: Workspace) -> None:
    config = node_of(ws, OPERATORS, {"templates/keys/alice.pub": f"{ALICE}\n",
                                     "templates/keys/bob.pub": f"{BOB}\n"})
    users = [a for a in config.actions if isinstance(a, UserAction)]
    keys = [a for a in config.actions if isinstance(a, AuthorizedKeysAction)]
    assert [(u.id, u.uid) for u in users] == [("user:alice", 2001), ("user:bob", 2002)]
    assert [(k.id, k.keys, k.requires) for k in keys] == [
        ("authorized-keys:alice", (ALICE,), ("user:alice",)),
        ("authorized-keys:bob", (BOB,), ("user:bob",))]


def test_a_missing_key_file_of_one_operator_is_an_error_at_the_declaration(
        ws: Workspace) -> None:
    files = {**BASIC, "classes/web.xml": class_xml("web", OPERATORS, "base"),
             "templates/keys/alice.pub": f"{ALICE}\n"}
    repo = ws.make_repo(files, commit=False)
    with pytest.raises(ConfigError) as caught:
        compile_node(load_fleet(open_snapshot(str(repo), None)), "web-01.tickets.chi1.sa")
    assert [str(p) for p in caught.value.problems] == [
        "classes/web.xml:8: key file templates/keys/bob.pub not found (node "
        "web-01.tickets.chi1.sa, authorized-keys:bob)"]
