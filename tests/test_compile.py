"""The compiler: a config repo (real files) becomes one NodeConfig per node, or every
problem it has, each as `path:line: message`. Nodes, variables and classes here; the
actions in test_compile_actions.py, XML safety in test_compile_xml.py."""

from __future__ import annotations

import pytest
from compile_support import fleet_of, node_of, problems_of
from configrepo import Workspace, class_xml, fleet_xml

from reconciler.compile.compiler import compile_node
from reconciler.compile.nodeconfig import FileAction, Severity
from reconciler.errors import UsageError


def test_range_expands_from_one_with_two_digits(ws: Workspace) -> None:
    fleet = fleet_of(ws, {"fleet.xml": fleet_xml(
        '  <nodes class="web" product="tickets" cluster="chi1" count="3"/>\n')})
    assert fleet.node_names() == [
        "web-01.tickets.chi1.sa", "web-02.tickets.chi1.sa", "web-03.tickets.chi1.sa"]


def test_range_honours_start_and_width(ws: Workspace) -> None:
    fleet = fleet_of(ws, {"fleet.xml": fleet_xml(
        '  <nodes class="web" product="p" cluster="c" count="2" start="9" width="3"/>\n')})
    assert fleet.node_names() == ["web-009.p.c.sa", "web-010.p.c.sa"]


def test_single_node_with_hyphenated_class(ws: Workspace) -> None:
    config = node_of(ws, {
        "fleet.xml": fleet_xml('  <node name="web-api-12.tickets.chi1.sa"/>\n'),
        "classes/web-api.xml": class_xml("web-api", "", "base"),
    }, "web-api-12.tickets.chi1.sa")
    assert (config.cls, config.number, config.class_chain) == ("web-api", 12, ("base", "web-api"))


def test_node_names_filter_by_class_product_and_cluster(ws: Workspace) -> None:
    fleet = fleet_of(ws, {
        "fleet.xml": fleet_xml(
            '  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n'
            '  <nodes class="web" product="events" cluster="chi1" count="1"/>\n'
            '  <nodes class="base" product="tickets" cluster="lax2" count="1"/>\n'),
    })
    assert fleet.node_names(cls="base") == ["base-01.tickets.lax2.sa"]
    assert fleet.node_names(product="events") == ["web-01.events.chi1.sa"]
    assert fleet.node_names(cls="web", product="tickets", cluster="chi1") == [
        "web-01.tickets.chi1.sa", "web-02.tickets.chi1.sa"]
    assert fleet.node_names(cluster="nowhere") == []


def test_overlapping_ranges_name_the_duplicate_node_and_both_lines(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml(
        '  <nodes class="web" product="p" cluster="c" count="3"/>\n'
        '  <nodes class="web" product="p" cluster="c" count="2" start="3"/>\n')}) == [
        "fleet.xml:3: duplicate node web-03.p.c.sa (first declared at fleet.xml:2)"]


def test_two_node_elements_with_one_name_are_a_duplicate(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml(
        '  <node name="web-01.p.c.sa"/>\n  <node name="web-01.p.c.sa"/>\n')}) == [
        "fleet.xml:3: duplicate node web-01.p.c.sa (first declared at fleet.xml:2)"]


def test_node_element_may_add_variables_to_a_node_of_a_range(ws: Workspace) -> None:
    config = node_of(ws, {"fleet.xml": fleet_xml(
        '  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n'
        '  <node name="web-01.tickets.chi1.sa"><var name="role">primary</var></node>\n')})
    assert config.values()["role"] == "primary"


def test_range_of_unknown_class_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml(
        '  <nodes class="nope" product="p" cluster="c" count="1"/>\n')}) == [
        "fleet.xml:2: unknown class 'nope' (no classes/nope.xml)"]


def test_node_whose_class_does_not_exist_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml('  <node name="db-01.p.c.sa"/>\n')}) == [
        "fleet.xml:2: unknown class 'db' in node name db-01.p.c.sa (no classes/db.xml)"]


def test_node_outside_the_domain_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml('  <node name="web-01.p.c.other"/>\n')}) == [
        "fleet.xml:2: node web-01.p.c.other is not in the fleet's domain 'sa'"]


def test_bad_node_name_is_an_error_at_its_line(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml('\n  <node name="web.p.c.sa"/>\n')}) == [
        "fleet.xml:3: bad node name 'web.p.c.sa': first label must be class-NN"]


def test_unknown_node_is_a_usage_error(ws: Workspace) -> None:
    with pytest.raises(UsageError, match=r"unknown node 'web-09\.tickets\.chi1\.sa'"):
        node_of(ws, {}, "web-09.tickets.chi1.sa")


# ---------------------------------------------------------------- variables


def test_variables_of_every_type_nested(ws: Workspace) -> None:
    config = node_of(ws, {"fleet.xml": fleet_xml('''\
  <defaults>
    <var name="s">text</var>
    <var name="i" type="int"> 42 </var>
    <var name="yes" type="bool">true</var>
    <var name="no" type="bool">false</var>
    <var name="empty" type="list"/>
    <var name="upstreams" type="list">
      <item type="map">
        <entry key="host">app-01</entry>
        <entry key="port" type="int">8080</entry>
        <entry key="tags" type="list"><item>a</item><item>b</item></entry>
      </item>
    </var>
    <var name="limits" type="map">
      <entry key="nofile" type="int">65536</entry>
      <entry key="inner" type="map"><entry key="on" type="bool">true</entry></entry>
    </var>
  </defaults>
  <nodes class="web" product="tickets" cluster="chi1" count="1"/>
''')})
    values = config.values()
    assert values["s"] == "text"
    assert values["i"] == 42
    assert values["yes"] is True and values["no"] is False
    assert values["empty"] == []
    assert values["upstreams"] == [{"host": "app-01", "port": 8080, "tags": ["a", "b"]}]
    assert values["limits"] == {"nofile": 65536, "inner": {"on": True}}


def test_bad_int_and_bad_bool_are_reported_at_their_lines(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml(
        '  <defaults>\n'
        '    <var name="x" type="int">12a</var>\n'
        '    <var name="y" type="list"><item type="bool">yes</item></var>\n'
        '  </defaults>\n')}) == [
        "fleet.xml:3: '12a' is not an integer",
        "fleet.xml:4: 'yes' is not a boolean (true or false)",
    ]


def test_bad_int_in_a_class_is_reported_in_the_class_file(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <var name="n" type="int">many</var>\n', "base")}) == [
        "classes/web.xml:2: 'many' is not an integer"]


LAYERED = {
    "fleet.xml": fleet_xml('''\
  <defaults>
    <var name="v">defaults</var>
    <var name="only_default">d</var>
  </defaults>
  <vars product="tickets" cluster="chi1"><var name="v">product+cluster</var></vars>
  <vars cluster="chi1"><var name="v">cluster</var></vars>
  <vars class="web" product="tickets" cluster="chi1"><var name="v">all three</var></vars>
  <vars product="tickets"><var name="v">product</var></vars>
  <vars class="web"><var name="v">class selector</var></vars>
  <nodes class="web" product="tickets" cluster="chi1" count="2">
    <var name="v">range</var>
  </nodes>
  <nodes class="web" product="tickets" cluster="lax2" count="1"/>
  <nodes class="web" product="events" cluster="lax2" count="1"/>
  <node name="web-01.tickets.chi1.sa"><var name="v">node</var></node>
'''),
    "classes/top.xml": class_xml("top", '  <var name="v">class top</var>\n'),
    "classes/base.xml": class_xml(
        "base", '  <var name="v">class base</var>\n'
                '  <file path="/etc/motd" template="base/motd.j2"/>\n', "top"),
    "classes/web.xml": class_xml("web", '  <var name="v">class web</var>\n', "base"),
}


def test_layers_apply_from_defaults_to_the_node_in_order(ws: Workspace) -> None:
    variable = node_of(ws, LAYERED).variables["v"]
    assert variable.value == "node"
    assert [p.layer for p in variable.overrode] == [
        "defaults", "class top", "class base", "class web", "vars class=web",
        "vars cluster=chi1", "vars product=tickets", "vars product=tickets cluster=chi1",
        "vars class=web product=tickets cluster=chi1", "nodes web.tickets.chi1"]
    assert variable.set_by.layer == "node"
    assert str(variable.set_by.origin) == "fleet.xml:16"
    assert [str(p.origin) for p in variable.overrode][:4] == [
        "fleet.xml:3", "classes/top.xml:2", "classes/base.xml:2", "classes/web.xml:2"]


def test_more_selector_attributes_win_regardless_of_file_order(ws: Workspace) -> None:
    fleet = fleet_of(ws, LAYERED)
    assert compile_node(fleet, "web-02.tickets.chi1.sa").values()["v"] == "range"
    assert compile_node(fleet, "web-01.tickets.lax2.sa").values()["v"] == "product"
    assert compile_node(fleet, "web-01.events.lax2.sa").values()["v"] == "class selector"


def test_unset_layers_leave_the_general_value_without_overrides(ws: Workspace) -> None:
    variable = node_of(ws, LAYERED).variables["only_default"]
    assert (variable.value, variable.set_by.layer, variable.overrode) == ("d", "defaults", ())


def test_policy_merges_defaults_class_and_node(ws: Workspace) -> None:
    config = node_of(ws, {
        "fleet.xml": fleet_xml('''\
  <defaults><policy mode="audit" max-severity="none" interval="60" splay="5"/></defaults>
  <nodes class="web" product="tickets" cluster="chi1" count="1"/>
  <node name="web-01.tickets.chi1.sa"><policy max-severity="restart" prune="true"/></node>
'''),
        "classes/web.xml": class_xml("web", '  <policy interval="120" local-edits="hold"/>\n',
                                     "base"),
    })
    policy = config.policy
    assert (policy.mode, policy.max_severity, policy.interval, policy.splay) == (
        "audit", Severity.RESTART, 120, 5)
    assert (policy.local_edits, policy.prune) == ("hold", True)


# ---------------------------------------------------------------- classes


def test_class_chain_of_depth_three_is_most_general_first(ws: Workspace) -> None:
    config = node_of(ws, {
        "classes/mid.xml": class_xml("mid", '  <package name="curl"/>\n', "base"),
        "classes/web.xml": class_xml("web", '  <package name="nginx"/>\n', "mid"),
    })
    assert config.class_chain == ("base", "mid", "web")
    assert [a.id for a in config.actions] == ["file:/etc/motd", "package:curl", "package:nginx"]
    assert [a.declared_in for a in config.actions] == ["base", "mid", "web"]


def test_unknown_parent_class_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml("web", "", "nope")}) == [
        "classes/web.xml:1: class 'web' inherits unknown class 'nope' (no classes/nope.xml)"]


def test_inheritance_cycle_is_reported_once_naming_the_cycle(ws: Workspace) -> None:
    assert problems_of(ws, {
        "classes/base.xml": class_xml("base", "", "mid"),
        "classes/mid.xml": class_xml("mid", "", "web"),
        "classes/web.xml": class_xml("web", "", "base"),
    }) == ["classes/base.xml:1: class inheritance cycle: base -> mid -> web -> base"]


def test_class_file_name_must_match_the_class_name(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml("webby", "", "base")}) == [
        "classes/web.xml:1: class 'webby' must live in classes/webby.xml"]


def test_broken_class_file_is_reported_once_without_unknown_class_noise(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/base.xml": "<class name='base'>\n<file>\n</class>\n"}) == [
        "classes/base.xml:3: malformed XML: Opening and ending tag mismatch: file line 2 and class"]


def test_child_overrides_the_parent_action_on_the_same_path_in_place(ws: Workspace) -> None:
    config = node_of(ws, {
        "classes/base.xml": class_xml("base", '  <file path="/etc/motd" template="base/motd.j2"/>\n'
                                              '  <package name="curl"/>\n'),
        "classes/web.xml": class_xml("web", '  <file path="/etc/motd" mode="0600">'
                                            '<content>mine</content></file>\n', "base"),
    })
    assert [a.id for a in config.actions] == ["file:/etc/motd", "package:curl"]
    motd = config.actions[0]
    assert isinstance(motd, FileAction)
    assert (motd.declared_in, motd.content, motd.mode) == ("web", "mine", 0o600)


def test_two_actions_for_one_path_in_one_class_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <directory path="/srv"/>\n  <file path="/srv"><content/></file>\n', "base")}) == [
        "classes/web.xml:3: path /srv is declared twice in this class (also at line 2)"]


def test_two_packages_with_one_name_in_one_class_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <package name="nginx"/>\n  <package name="nginx"/>\n', "base")}) == [
        "classes/web.xml:3: package:nginx is declared twice in this class (also at line 2)"]
