"""Mixins: `<include class="…"/>` brings another class's variables and actions into a
class beside its inherits chain; conflicts, cycles and bad mixins are refused at the
include's line."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from configrepo import Workspace, class_xml, fleet_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.nodeconfig import NodeConfig
from reconciler.errors import ConfigError
from reconciler.source.snapshot import open_snapshot

Files = Mapping[str, str]
NODE = "web-01.tickets.chi1.sa"
FLEET = fleet_xml('  <nodes class="web" product="tickets" cluster="chi1" count="1"/>\n')
MONITORING = class_xml("monitoring", (
    '  <var name="exporter_port" type="int">9100</var>\n'
    '  <var name="level">monitoring</var>\n'
    '  <package name="node-exporter"/>\n'
    '  <file path="/etc/default/node-exporter" requires="package:node-exporter">'
    '<content>x</content></file>\n'))
BASE = class_xml("base", '  <var name="level">base</var>\n  <package name="chrony"/>\n')


def files_with(web: str, **classes: str) -> dict[str, str]:
    return {"fleet.xml": FLEET, "classes/base.xml": BASE, "classes/monitoring.xml": MONITORING,
            "classes/web.xml": class_xml("web", web, "base"),
            **{f"classes/{name}.xml": body for name, body in classes.items()}}


def node(ws: Workspace, files: Files, name: str = "repo") -> NodeConfig:
    repo = ws.make_repo(files, commit=False, name=name)
    return compile_node(load_fleet(open_snapshot(str(repo), None)), NODE)


def problems(ws: Workspace, files: Files, name: str = "repo") -> list[str]:
    repo = ws.make_repo(files, commit=False, name=name)
    with pytest.raises(ConfigError) as caught:
        load_fleet(open_snapshot(str(repo), None))
    return [str(p) for p in caught.value.problems]


def test_a_mixins_variables_and_actions_reach_the_node(ws: Workspace) -> None:
    config = node(ws, files_with('  <include class="monitoring"/>\n  <package name="nginx"/>\n'))
    assert [a.id for a in config.actions] == [
        "package:chrony", "package:node-exporter", "file:/etc/default/node-exporter",
        "package:nginx"]
    exporter = config.action("package:node-exporter")
    assert exporter is not None and (exporter.declared_in, exporter.via) == ("monitoring",
                                                                              ("web",))
    port = config.variables["exporter_port"]
    assert (port.value, port.set_by.layer, str(port.set_by.origin)) == (
        9100, "mixin monitoring (via web)", "classes/monitoring.xml:2")


def test_variables_resolve_mixin_after_parent_and_before_the_class(ws: Workspace) -> None:
    mixed = node(ws, files_with('  <include class="monitoring"/>\n'))
    assert mixed.variables["level"].value == "monitoring"
    assert [p.layer for p in mixed.variables["level"].overrode] == ["class base"]
    own = node(ws, files_with('  <include class="monitoring"/>\n'
                              '  <var name="level">web</var>\n'), name="own")
    assert own.variables["level"].value == "web"


def test_a_vars_block_still_wins_over_every_class(ws: Workspace) -> None:
    fleet = fleet_xml('  <vars class="web"><var name="exporter_port" type="int">9200</var></vars>\n'
                      '  <nodes class="web" product="tickets" cluster="chi1" count="1"/>\n')
    config = node(ws, {**files_with('  <include class="monitoring"/>\n'), "fleet.xml": fleet})
    assert config.variables["exporter_port"].value == 9200


def test_the_including_class_overrides_a_mixins_action(ws: Workspace) -> None:
    config = node(ws, files_with('  <include class="monitoring"/>\n'
                                 '  <package name="node-exporter" version="1.5.*"/>\n'))
    exporter = config.action("package:node-exporter")
    assert exporter is not None
    assert (exporter.declared_in, exporter.version, str(exporter.origin)) == (  # type: ignore[union-attr]
        "web", "1.5.*", "classes/web.xml:3")


def test_two_mixins_declaring_one_action_conflict_at_the_second_include(ws: Workspace) -> None:
    logging = class_xml("logging", '  <package name="node-exporter"/>\n')
    found = problems(ws, files_with('  <include class="monitoring"/>\n'
                                    '  <include class="logging"/>\n', logging=logging))
    assert found == [
        "classes/web.xml:3: package:node-exporter is declared by mixins 'monitoring' (at "
        "classes/monitoring.xml:4) and 'logging' (at classes/logging.xml:2): declare it in "
        "class 'web' to choose"]


def test_the_including_class_settles_a_conflict_by_declaring_it(ws: Workspace) -> None:
    logging = class_xml("logging", '  <var name="exporter_port" type="int">1</var>\n'
                                   '  <package name="node-exporter"/>\n')
    config = node(ws, files_with('  <include class="monitoring"/>\n'
                                 '  <include class="logging"/>\n'
                                 '  <var name="exporter_port" type="int">2</var>\n'
                                 '  <package name="node-exporter"/>\n', logging=logging))
    assert config.variables["exporter_port"].value == 2
    assert config.action("package:node-exporter").declared_in == "web"  # type: ignore[union-attr]


def test_two_mixins_setting_one_variable_conflict(ws: Workspace) -> None:
    logging = class_xml("logging", '  <var name="exporter_port" type="int">9101</var>\n')
    found = problems(ws, files_with('  <include class="monitoring"/>\n'
                                    '  <include class="logging"/>\n', logging=logging))
    assert found == [
        "classes/web.xml:3: variable 'exporter_port' is set by mixins 'monitoring' (at "
        "classes/monitoring.xml:2) and 'logging' (at classes/logging.xml:2): set it in class "
        "'web' to choose"]


def test_one_mixin_reached_through_two_others_is_no_conflict(ws: Workspace) -> None:
    first = class_xml("first", '  <include class="monitoring"/>\n')
    second = class_xml("second", '  <include class="monitoring"/>\n')
    config = node(ws, files_with('  <include class="first"/>\n  <include class="second"/>\n',
                                 first=first, second=second))
    assert [a.id for a in config.actions].count("package:node-exporter") == 1
    assert config.action("package:node-exporter").via == ("web", "first")  # type: ignore[union-attr]


def test_a_conflict_inside_a_mixin_is_reported_where_that_mixin_includes(ws: Workspace) -> None:
    stack = class_xml("stack", '  <include class="monitoring"/>\n  <include class="other"/>\n')
    other = class_xml("other", '  <package name="node-exporter"/>\n')
    found = problems(ws, files_with('  <include class="stack"/>\n', stack=stack, other=other))
    assert found == [
        "classes/stack.xml:3: package:node-exporter is declared by mixins 'monitoring' (at "
        "classes/monitoring.xml:4) and 'other' (at classes/other.xml:2): declare it in class "
        "'stack' to choose"]


def test_a_mixin_may_require_what_its_including_class_declares(ws: Workspace) -> None:
    status = class_xml("status", '  <file path="/etc/nginx/status.conf" '
                                 'requires="package:nginx"><content>on</content></file>\n')
    config = node(ws, files_with('  <include class="status"/>\n  <package name="nginx"/>\n',
                                 status=status))
    assert config.action("file:/etc/nginx/status.conf") is not None
    found = problems(ws, files_with('  <include class="status"/>\n', status=status),
                     name="without")
    assert found == ["classes/status.xml:2: requires unknown action 'package:nginx' "
                     "(file:/etc/nginx/status.conf)"]


@pytest.mark.parametrize(("web", "extra", "expected"), [
    ('  <include class="nowhere"/>\n', {},
     "classes/web.xml:2: class 'web' includes unknown class 'nowhere' (no "
     "classes/nowhere.xml)"),
    ('  <include class="base"/>\n', {},
     "classes/web.xml:2: class 'web' includes 'base', which it already inherits"),
    ('  <include class="child"/>\n', {"child": class_xml("child", "", "base")},
     "classes/web.xml:2: class 'child' inherits 'base', so it cannot be included as a mixin"),
    ('  <include class="strict"/>\n',
     {"strict": class_xml("strict", '  <policy max-severity="none"/>\n')},
     "classes/web.xml:2: class 'strict' sets a policy, so it cannot be included as a mixin "
     "(policy belongs to the chain)"),
    ('  <include class="monitoring"/>\n  <include class="monitoring"/>\n', {},
     "classes/web.xml:3: class 'monitoring' is included twice"),
    ('  <include class="a"/>\n',
     {"a": class_xml("a", '  <include class="b"/>\n'),
      "b": class_xml("b", '  <include class="a"/>\n')},
     "classes/b.xml:2: class include cycle: a -> b -> a"),
    ('  <include class="web"/>\n', {},
     "classes/web.xml:2: class include cycle: web -> web"),
], ids=["unknown", "ancestor", "inherits", "policy", "twice", "cycle", "itself"])
def test_bad_includes_are_refused_at_the_include(ws: Workspace, web: str,
                                                 extra: dict[str, str], expected: str) -> None:
    assert problems(ws, files_with(web, **extra)) == [expected]


def test_validate_reports_mixin_problems_with_file_and_line(ws: Workspace) -> None:
    logging = class_xml("logging", '  <package name="node-exporter"/>\n')
    repo = ws.make_repo(files_with('  <include class="monitoring"/>\n'
                                   '  <include class="logging"/>\n', logging=logging))
    done = ws.cli("validate", "--repo", repo)
    assert done.code == 1
    assert done.err.splitlines()[0].startswith("classes/web.xml:3: package:node-exporter is "
                                               "declared by mixins")


def test_explain_shows_mixins_and_where_their_actions_come_from(ws: Workspace) -> None:
    repo = ws.make_repo(files_with('  <include class="monitoring"/>\n'))
    done = ws.cli("explain", "--repo", repo, NODE)
    assert done.code == 0, done.err
    assert "mixins: monitoring (via web)" in done.out
    assert "mixin via web" in done.out
    variable = ws.cli("explain", "--repo", repo, NODE, "exporter_port")
    assert variable.out.splitlines()[1] == (
        "  set by mixin monitoring (via web) at classes/monitoring.xml:2")


def test_moving_actions_into_a_mixin_changes_no_node(ws: Workspace) -> None:
    repo = ws.make_repo(files_with('  <package name="node-exporter"/>\n'
                                   '  <file path="/etc/default/node-exporter" '
                                   'requires="package:node-exporter"><content>x</content></file>\n'))
    ws.write(repo, files_with('  <include class="monitoring"/>\n'))
    ws.commit(repo)
    done = ws.cli("plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD")
    assert (done.code, done.out.splitlines()[1]) == (0, "no node changes (1 node)"), done.out


def test_a_mixins_health_checks_reach_the_node_and_its_class_may_replace_one(
        ws: Workspace) -> None:
    monitoring = MONITORING.replace(
        "</class>", '  <health name="exporter" run="curl -fsS http://127.0.0.1:9100/"/>\n'
                    '  <health name="serves" run="true"/>\n</class>')
    config = node(ws, {**files_with('  <include class="monitoring"/>\n'
                                    '  <health name="serves" run="curl -fsS http://127.0.0.1/"/>\n'),
                       "classes/monitoring.xml": monitoring})
    assert [(c.name, c.run) for c in config.health] == [
        ("exporter", "curl -fsS http://127.0.0.1:9100/"),
        ("serves", "curl -fsS http://127.0.0.1/")]
