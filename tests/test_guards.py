"""Guard rails: fleet.xml says which classes may manage which paths and action kinds, and
validate (so the hooks) and every node refuse the rest at its line."""

from __future__ import annotations

import pytest
from configrepo import BASIC, Workspace, class_xml

NODE = "web-01.tickets.chi1.sa"
RAILS = """\
  <guard path="/etc/sudoers.d" allow="base"/>
  <guard path="/root/.ssh"/>
  <guard kind="command" allow="base"/>
"""


def fleet(rails: str = RAILS) -> str:
    return BASIC["fleet.xml"].replace("</fleet>", rails + "</fleet>")


def validate(ws: Workspace, web_body: str, base_body: str = "", rails: str = RAILS) -> list[str]:
    """validate's error lines (warnings left out) for these classes under `rails`."""
    repo = ws.make_repo({**BASIC, "fleet.xml": fleet(rails),
                         "classes/base.xml": class_xml(
                             "base", '  <file path="/etc/motd" template="base/motd.j2"/>\n'
                             + base_body),
                         "classes/web.xml": class_xml("web", web_body, inherits="base")})
    done = ws.cli("validate", "--repo", repo)
    assert "Traceback" not in done.err
    return [line for line in (done.out + done.err).splitlines()
            if line.startswith(("classes/", "fleet.xml")) and ": warning: " not in line]


def test_a_class_that_is_not_allowed_cannot_manage_a_guarded_path(ws: Workspace) -> None:
    lines = validate(ws, '  <file path="/etc/sudoers.d/web"><content>web ALL=(ALL) ALL\n'
                         '</content></file>\n')
    assert lines == ["classes/web.xml:2: class web may not manage /etc/sudoers.d and below: "
                     "fleet.xml line 8 allows base (node web-01.events.lax2.sa, "
                     "file:/etc/sudoers.d/web) (and 2 more nodes)"]


def test_the_allowed_class_manages_the_guarded_path(ws: Workspace) -> None:
    assert validate(ws, "", '  <file path="/etc/sudoers.d/ops"><content>%ops ALL=(ALL) ALL\n'
                            "</content></file>\n") == []


@pytest.mark.parametrize("body", [
    '  <authorized-keys user="root"><key>ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6U'
    'OoqKLsabgH5C9okWi0dh2l9GKJl me</key></authorized-keys>\n',
    '  <tree path="/root" source="web"/>\n',
    '  <directory path="/etc" purge="true"/>\n',
    '  <symlink path="/root/.ssh/authorized_keys" target="/tmp/keys"/>\n',
    '  <line path="/etc/sudoers.d/extra" name="me" line="me ALL=(ALL) ALL"/>\n',
])
def test_every_way_to_reach_a_guarded_path_is_refused(ws: Workspace, body: str) -> None:
    lines = validate(ws, body)
    assert len(lines) == 1 and lines[0].startswith("classes/web.xml:2: class web may not "
                                                   "manage "), lines


def test_a_guarded_kind_is_refused_outside_its_classes(ws: Workspace) -> None:
    lines = validate(ws, '  <command name="own" run="echo me >>/root/.ssh/authorized_keys"/>\n')
    assert len(lines) == 1 and lines[0].startswith(
        "classes/web.xml:2: class web may not manage <command> actions: fleet.xml line 10 "
        "allows base")


def test_a_guard_path_must_be_absolute_and_canonical(ws: Workspace) -> None:
    lines = validate(ws, "", rails='  <guard path="/etc/../root"/>\n')
    assert lines == ["fleet.xml:8: <guard> path '/etc/../root' must be an absolute, "
                     "canonical path below /"]


def test_a_node_refuses_a_commit_that_breaks_a_guard_and_writes_nothing(
    ws: Workspace,
) -> None:
    repo = ws.make_repo({**BASIC, "fleet.xml": fleet(), "classes/web.xml": class_xml(
        "web", '  <file path="/etc/sudoers.d/web"><content>x\n</content></file>\n',
        inherits="base")})
    root = ws.tmp / "node"
    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root)
    assert done.code == 1 and "may not manage /etc/sudoers.d" in done.out + done.err
    assert not (root / "etc/sudoers.d/web").exists() and not (root / "etc/motd").exists()
