"""The repo commands through the installed `reconciler` script: init, validate, nodes,
explain, render. Every bad input gives `path:line: message`, exit 1, and no traceback."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from configrepo import BASIC, CliResult, Workspace, class_xml, fleet_xml

LOCATED = re.compile(r"^[\w./-]+:\d+: \S")


def assert_refused(result: CliResult) -> list[str]:
    """Exit 1, nothing on stdout, no traceback; returns the problem lines (no summary)."""
    assert result.code == 1, result
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    return [line for line in lines if not line.startswith("invalid: ")]


def validate_broken(ws: Workspace, files: Mapping[str, str | bytes | None]) -> list[str]:
    repo = ws.make_repo({**BASIC, **files})
    return assert_refused(ws.cli("validate", "--repo", repo))


# ---------------------------------------------------------------- init


def test_init_creates_a_repo_on_main_with_one_commit_that_validates(ws: Workspace) -> None:
    target = ws.tmp / "fleet"
    assert ws.cli("init", target).code == 0
    assert ws.git(target, "branch", "--show-current") == "main"
    assert ws.git(target, "rev-list", "--count", "HEAD") == "1"
    assert ws.git(target, "status", "--porcelain") == ""
    assert (target / "fleet.xml").is_file() and (target / "templates").is_dir()
    code, out, err = ws.cli("validate", cwd=target)
    assert (code, err) == (0, "")
    assert re.fullmatch(r"ok: \d+ nodes, \d+ classes, \d+ files rendered in [\d.]+s\n"
                        r"\d+ of these files use facts their node has not published: checked "
                        r"with placeholders \(--facts DIR\)\n", out)  # the proxies' nginx.conf
    names = ws.cli("nodes", "--repo", target).out.split()
    assert {"proxy-01.tickets.chi1.sa", "database-01.tickets.lax2.sa"} <= set(names)
    assert 700 <= len(names) <= 900


def test_init_refuses_a_non_empty_directory(ws: Workspace) -> None:
    target = ws.tmp / "busy"
    target.mkdir()
    (target / "precious.txt").write_text("keep me\n")
    code, _, err = ws.cli("init", target)
    assert code == 1 and "Traceback" not in err
    assert err == f"error: {target} exists and is not empty\n"
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]


# ---------------------------------------------------------------- validate


def test_validate_prints_a_one_line_summary_on_success(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    code, out, err = ws.cli("validate", "--repo", repo)
    assert (code, err) == (0, "")
    assert re.fullmatch(r"ok: 3 nodes, 2 classes, 3 files rendered in [\d.]+s\n", out)


def test_validate_reads_the_current_directory_by_default(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    assert ws.cli("validate", cwd=repo).out.startswith("ok: 3 nodes")


def test_validate_prints_every_distinct_problem_at_once(ws: Workspace) -> None:
    lines = validate_broken(ws, {
        "fleet.xml": fleet_xml('  <defaults><var name="greeting">hi</var></defaults>\n'
                               '  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n'
                               '  <node name="web_01.p.c.sa"/>\n'),
        "classes/base.xml": class_xml("base", '  <file path="/etc/motd" template="base/motd.j2"/>\n'
                                              '  <directory path="var/x"/>\n'),
        "classes/web.xml": class_xml("web", '  <package name="nginx" colour="red"/>\n', "base"),
    })
    assert lines == [
        "classes/base.xml:3: <directory>: path 'var/x' must be absolute",
        "classes/web.xml:2: invalid attribute colour for element package",
        "fleet.xml:4: bad node name 'web_01.p.c.sa': first label must be class-NN",
    ]


def test_validate_groups_one_problem_shared_by_many_nodes(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "templates/base/motd.j2": "{{ greeting }}\n{{ colour }}\n"})
    result = ws.cli("validate", "--repo", repo)
    assert assert_refused(result) == [
        "templates/base/motd.j2:2: undefined variable: 'colour' is undefined "
        "(node web-01.events.lax2.sa) (and 2 more nodes)"]
    assert result.err.splitlines()[-1] == "invalid: 1 distinct problem(s)"


def test_validate_output_is_bounded(ws: Workspace) -> None:
    body = "".join(f'  <file path="/etc/f{i}" template="web/f{i}.j2"/>\n' for i in range(260))
    repo = ws.make_repo({**BASIC, "classes/web.xml": class_xml("web", body, "base")})
    result = ws.cli("validate", "--repo", repo)
    lines = assert_refused(result)
    assert len(lines) == 200 and all(LOCATED.match(line) for line in lines)
    assert result.err.splitlines()[-1] == "invalid: 260 distinct problem(s), 60 not shown"


def test_validate_rev_reads_the_commit_when_the_working_tree_is_broken(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    ws.write(repo, {"templates/base/motd.j2": "{{ greeting }}\n"})
    ws.commit(repo)
    ws.write(repo, {"fleet.xml": "<fleet domain='sa'>\n<oops\n", "classes/web.xml": None})
    assert assert_refused(ws.cli("validate", "--repo", repo))[0].startswith("fleet.xml:")
    for rev in ("HEAD", "HEAD~1", "main"):
        code, out, _ = ws.cli("validate", "--repo", repo, "--rev", rev)
        assert code == 0 and out.startswith("ok: 3 nodes"), rev


def test_working_tree_is_read_without_rev_even_when_the_commit_is_broken(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "templates/base/motd.j2": "{{ broken }\n"})
    ws.write(repo, {"templates/base/motd.j2": "fixed\n"})
    assert ws.cli("validate", "--repo", repo).code == 0
    assert assert_refused(ws.cli("validate", "--repo", repo, "--rev", "HEAD"))[0].startswith(
        "templates/base/motd.j2:1: template syntax error")


def test_unknown_revision_is_a_clear_error(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    [line] = assert_refused(ws.cli("validate", "--repo", repo, "--rev", "no-such-thing"))
    assert line == f"{repo}: unknown revision 'no-such-thing'"


# ---------------------------------------------------------------- bad input


BAD_INPUTS: dict[str, tuple[dict[str, str], str]] = {
    "malformed XML": (
        {"classes/web.xml": '<class name="web">\n  <package name="x">\n</class>\n'},
        "classes/web.xml:3: malformed XML: "),
    "doctype and entities": (
        {"fleet.xml": '<?xml version="1.0"?>\n<!DOCTYPE f [<!ENTITY a "aaaa">]>\n'
                      '<fleet domain="sa">&a;</fleet>\n'},
        "fleet.xml:2: DOCTYPE declarations are not allowed"),
    "unknown element": (
        {"classes/web.xml": class_xml("web", "  <frobnicate/>\n", "base")},
        "classes/web.xml:2: did not expect element frobnicate there"),
    "unknown attribute": (
        {"fleet.xml": fleet_xml('  <nodes class="web" product="p" cluster="c" count="1" '
                                'size="9"/>\n')},
        "fleet.xml:2: invalid attribute size for element nodes"),
    "unknown class": (
        {"fleet.xml": fleet_xml('  <nodes class="cache" product="p" cluster="c" count="1"/>\n')},
        "fleet.xml:2: unknown class 'cache' (no classes/cache.xml)"),
    "cyclic class": (
        {"classes/base.xml": class_xml("base", "", "web")},
        "classes/base.xml:1: class inheritance cycle: base -> web -> base"),
    "duplicate node": (
        {"fleet.xml": fleet_xml('  <nodes class="web" product="p" cluster="c" count="2"/>\n'
                                '  <node name="web-02.p.c.sa"/>\n'
                                '  <node name="web-02.p.c.sa"/>\n')},
        "fleet.xml:4: duplicate node web-02.p.c.sa (first declared at fleet.xml:2)"),
    "bad node name": (
        {"fleet.xml": fleet_xml('  <node name="web-01.p.sa"/>\n')},
        "fleet.xml:2: bad node name 'web-01.p.sa'"),
    "missing template": (
        {"classes/web.xml": class_xml("web", '  <file path="/x" template="web/x.j2"/>\n', "base")},
        "classes/web.xml:2: template templates/web/x.j2 not found"),
    "template syntax error": (
        {"templates/base/motd.j2": "ok\n{% for x in %}\n{% endfor %}\n"},
        "templates/base/motd.j2:2: template syntax error: "),
    "undefined variable": (
        {"templates/base/motd.j2": "ok\n\n{{ colour }}\n"},
        "templates/base/motd.j2:3: undefined variable: 'colour' is undefined (node web-01."),
    "sandbox escape": (
        {"templates/base/motd.j2": "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"},
        "templates/base/motd.j2:1: unsafe template operation refused by the sandbox"),
    "sandbox escape with attr": (
        {"templates/base/motd.j2": "\n{{ (greeting|attr('__class__')).__mro__ }}\n"},
        "templates/base/motd.j2:2: unsafe template operation refused by the sandbox"),
    "relative action path": (
        {"classes/web.xml": class_xml("web", '  <directory path="srv"/>\n', "base")},
        "classes/web.xml:2: <directory>: path 'srv' must be absolute"),
    "action path with ..": (
        {"classes/web.xml": class_xml("web", '  <symlink path="/srv/../x" target="/y"/>\n',
                                      "base")},
        "classes/web.xml:2: <symlink>: path '/srv/../x' must not contain '..'"),
    "template path that leaves the repo": (
        {"classes/web.xml": class_xml("web", '  <file path="/x" template="../../etc/passwd"/>\n',
                                      "base")},
        "classes/web.xml:2: <file>: template '../../etc/passwd' leaves the repo"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_located_line_and_exit_1(ws: Workspace, case: str) -> None:
    files, expected = BAD_INPUTS[case]
    lines = validate_broken(ws, files)
    assert lines and all(LOCATED.match(line) for line in lines), lines
    assert lines[0].startswith(expected), lines


def test_render_of_a_broken_template_is_refused_with_its_line(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "templates/base/motd.j2": "\n{{ nope }}\n"})
    result = ws.cli("render", "--repo", repo, "web-01.tickets.chi1.sa")
    assert assert_refused(result) == [
        "templates/base/motd.j2:2: undefined variable: 'nope' is undefined; did you mean "
        "'node'? (node web-01.tickets.chi1.sa)"]
    assert result.out == ""


# ---------------------------------------------------------------- nodes


def test_nodes_lists_every_node_and_filters(ws: Workspace) -> None:
    repo = ws.make_repo({
        **BASIC,
        "fleet.xml": fleet_xml('  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n'
                               '  <nodes class="web" product="events" cluster="lax2" count="1"/>\n'
                               '  <nodes class="base" product="tickets" cluster="lax2" '
                               'count="1"/>\n'),
    })
    assert ws.cli("nodes", "--repo", repo).out.split() == [
        "base-01.tickets.lax2.sa", "web-01.events.lax2.sa", "web-01.tickets.chi1.sa",
        "web-02.tickets.chi1.sa"]
    assert ws.cli("nodes", "--repo", repo, "--class", "web", "--cluster", "lax2").out == (
        "web-01.events.lax2.sa\n")
    assert ws.cli("nodes", "--repo", repo, "--product", "tickets", "--cluster", "lax2").out == (
        "base-01.tickets.lax2.sa\n")
    assert ws.cli("nodes", "--repo", repo, "--class", "web", "--cluster", "chi9") == CliResult(
        1, "", "error: unknown cluster 'chi9' (known: chi1, lax2)\n")


# ---------------------------------------------------------------- explain


EXPLAINED = {
    **BASIC,
    "fleet.xml": fleet_xml('''\
  <defaults><var name="workers" type="int">2</var><var name="greeting">hi</var></defaults>
  <vars cluster="chi1"><var name="workers" type="int">4</var></vars>
  <vars class="web" product="tickets"><var name="workers" type="int">8</var></vars>
  <nodes class="web" product="tickets" cluster="chi1" count="2"/>
  <node name="web-02.tickets.chi1.sa"><var name="workers" type="int">32</var></node>
'''),
    "classes/web.xml": class_xml("web", '  <var name="workers" type="int">3</var>\n'
                                        '  <package name="nginx" severity="reload"/>\n', "base"),
}


def test_explain_variable_shows_layer_file_line_and_what_it_overrode(ws: Workspace) -> None:
    repo = ws.make_repo(EXPLAINED)
    code, out, err = ws.cli("explain", "--repo", repo, "web-01.tickets.chi1.sa", "workers")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "workers = 8",
        "  set by vars class=web product=tickets at fleet.xml:4",
        "  overrode 4 from vars cluster=chi1 at fleet.xml:3",
        "  overrode 3 from class web at classes/web.xml:2",
        "  overrode 2 from defaults at fleet.xml:2",
    ]
    out = ws.cli("explain", "--repo", repo, "web-02.tickets.chi1.sa", "workers").out
    assert out.splitlines()[:2] == ["workers = 32", "  set by node at fleet.xml:6"]


def test_explain_node_shows_identity_chain_variables_and_actions(ws: Workspace) -> None:
    repo = ws.make_repo(EXPLAINED)
    code, out, err = ws.cli("explain", "--repo", repo, "web-01.tickets.chi1.sa")
    assert (code, err) == (0, "")
    assert "class chain: base → web" in out
    assert "max-severity reload" in out
    row = next(line for line in out.splitlines() if " workers " in line)
    assert all(part in row for part in ("8", "vars class=web product=tickets", "fleet.xml:4",
                                        "4 (vars cluster=chi1)", "3 (class web)", "2 (defaults)"))
    actions = [line for line in out.splitlines()
               if "package:nginx" in line or "file:/etc/motd" in line]
    assert len(actions) == 2
    assert "web (classes/web.xml:3)" in actions[1] and "reload" in actions[1]


def test_explain_unknown_node_or_variable_is_a_clear_error(ws: Workspace) -> None:
    repo = ws.make_repo(EXPLAINED)
    [line] = assert_refused(ws.cli("explain", "--repo", repo, "web-09.tickets.chi1.sa"))
    assert line.startswith("error: unknown node 'web-09.tickets.chi1.sa'")
    [line] = assert_refused(ws.cli("explain", "--repo", repo, "web-01.tickets.chi1.sa", "nope"))
    assert line == "error: variable 'nope' is not set for web-01.tickets.chi1.sa"


# ---------------------------------------------------------------- render


RENDERED = {
    **BASIC,
    "classes/web.xml": class_xml("web", '''\
  <file path="/etc/app/secret.ini" template="web/secret.j2" secret="true" mode="0600"/>
  <file path="/etc/app/plain.ini"><content>plain = 1
</content></file>
  <file path="/etc/app/gone" ensure="absent"/>
''', "base"),
    "templates/web/secret.j2": "password = hunter2-{{ node.number }}\n",
}


def test_render_prints_each_file_under_a_header_and_redacts_secrets(ws: Workspace) -> None:
    repo = ws.make_repo(RENDERED)
    code, out, err = ws.cli("render", "--repo", repo, "web-01.tickets.chi1.sa")
    assert (code, err) == (0, "")
    assert "hunter2" not in out
    lines = out.splitlines()
    assert lines[:2] == ["==> /etc/motd (templates/base/motd.j2) <==",
                         "hello from web-01.tickets.chi1.sa"]
    assert lines[2] == "==> /etc/app/secret.ini (templates/web/secret.j2) <=="
    assert lines[3] == "(secret: 21 bytes)"  # no hash: a short password is guessable from one
    assert lines[4:] == ["==> /etc/app/plain.ini (inline) <==", "plain = 1",
                         "==> /etc/app/gone (absent) <==", "(absent)"]


def test_render_out_writes_files_at_their_node_paths(ws: Workspace) -> None:
    repo = ws.make_repo(RENDERED)
    out_dir = ws.tmp / "out"
    code, out, _ = ws.cli("render", "--repo", repo, "web-01.tickets.chi1.sa", "--out", out_dir)
    assert code == 0 and "hunter2" not in out
    assert (out_dir / "etc/motd").read_text() == "hello from web-01.tickets.chi1.sa\n"
    secret = out_dir / "etc/app/secret.ini"
    assert secret.read_text() == "password = hunter2-1\n"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert not (out_dir / "etc/app/gone").exists()
    assert sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file()) == [
        "etc/app/plain.ini", "etc/app/secret.ini", "etc/motd"]


def test_render_rev_uses_the_committed_template(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    ws.write(repo, {"templates/base/motd.j2": "changed\n"})
    out = ws.cli("render", "--repo", repo, "--rev", "HEAD", "web-01.tickets.chi1.sa").out
    assert "hello from web-01.tickets.chi1.sa" in out
    out = ws.cli("render", "--repo", repo, "web-01.tickets.chi1.sa").out
    assert "changed" in out


def test_commands_refuse_a_repo_path_that_does_not_exist(ws: Workspace) -> None:
    missing: Path = ws.tmp / "missing"
    [line] = assert_refused(ws.cli("nodes", "--repo", missing))
    assert line == f"{missing}: not a directory"
