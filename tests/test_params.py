"""Parameterised actions: an action's own variables, and for-each declarations that
become one action per item of a node's list or map variable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from configrepo import Workspace, class_xml, fleet_xml

from reconciler.compile import resolve
from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.nodeconfig import FileAction, NodeConfig, Notify, PackageAction
from reconciler.errors import ConfigError
from reconciler.render.renderer import Renderer, render_node
from reconciler.source.snapshot import open_snapshot

Files = Mapping[str, str]
NODE = "web-01.tickets.chi1.sa"
APPS = """\
    <var name="apps" type="map">
      <entry key="shop" type="map"><entry key="port" type="int">8001</entry></entry>
      <entry key="cart" type="map"><entry key="port" type="int">8002</entry></entry>
    </var>
"""
FLEET = fleet_xml(f"  <defaults>\n{APPS}  </defaults>\n"
                  '  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n')


def repo(ws: Workspace, body: str, files: Files | None = None, fleet: str = FLEET) -> Path:
    return ws.make_repo({"fleet.xml": fleet, "classes/web.xml": class_xml("web", body),
                         "templates/app.j2": "{{ app.key }} on {{ app.value.port }}\n",
                         **(files or {})}, commit=False)


def node(ws: Workspace, body: str, files: Files | None = None, fleet: str = FLEET,
         name: str = NODE) -> NodeConfig:
    return compile_node(load_fleet(open_snapshot(str(repo(ws, body, files, fleet)), None)), name)


def problems(ws: Workspace, body: str, files: Files | None = None, fleet: str = FLEET) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        node(ws, body, files, fleet)
    return [str(p) for p in caught.value.problems]


def rendered(ws: Workspace, body: str, files: Files | None = None) -> dict[str, str]:
    fleet = load_fleet(open_snapshot(str(repo(ws, body, files)), None))
    found, trouble = render_node(Renderer(fleet), compile_node(fleet, NODE))
    assert trouble == []
    return {f.path: (f.content or b"").decode() for f in found}


FOR_EACH = ('  <directory path="/etc/apps"/>\n'
            '  <file for-each="apps" as="app" path="/etc/apps/{app.key}.conf" template="app.j2"\n'
            '        requires="directory:/etc/apps" notify="service:app@{app.key}:reload"/>\n'
            '  <service for-each="apps" as="app" name="app@{app.key}"/>\n')


def test_a_for_each_over_a_map_gives_one_action_per_entry(ws: Workspace) -> None:
    config = node(ws, FOR_EACH)
    files = [a for a in config.actions if isinstance(a, FileAction)]
    assert [(a.id, a.item, a.requires, a.notify) for a in files] == [
        ("file:/etc/apps/shop.conf", "apps[shop]", ("directory:/etc/apps",),
         (Notify(target="service:app@shop", verb="reload"),)),
        ("file:/etc/apps/cart.conf", "apps[cart]", ("directory:/etc/apps",),
         (Notify(target="service:app@cart", verb="reload"),)),
    ]
    assert files[0].vars == {"app": {"key": "shop", "value": {"port": 8001}}}
    assert str(files[0].origin) == "classes/web.xml:4"  # where the start tag ends
    assert [a.id for a in config.actions if a.kind == "service"] == [
        "service:app@shop", "service:app@cart"]


def test_each_expanded_file_renders_with_its_own_item(ws: Workspace) -> None:
    assert rendered(ws, FOR_EACH) == {"/etc/apps/shop.conf": "shop on 8001\n",
                                      "/etc/apps/cart.conf": "cart on 8002\n"}


def test_a_for_each_over_a_list_keys_items_by_position(ws: Workspace) -> None:
    fleet = fleet_xml('  <defaults><var name="tools" type="list"><item>htop</item>'
                      '<item>tcpdump</item></var></defaults>\n'
                      '  <nodes class="web" product="tickets" cluster="chi1" count="1"/>\n')
    config = node(ws, '  <package for-each="tools" name="{item.value}"/>\n', fleet=fleet)
    assert [(a.id, a.item) for a in config.actions] == [
        ("package:htop", "tools[0]"), ("package:tcpdump", "tools[1]")]


def test_each_node_expands_over_its_own_value(ws: Workspace) -> None:
    fleet = FLEET.replace("</fleet>", '  <node name="web-02.tickets.chi1.sa">\n'
                                      '    <var name="apps" type="map"><entry key="solo" '
                                      'type="map"><entry key="port">9</entry></entry></var>\n'
                                      '  </node>\n</fleet>')
    second = node(ws, FOR_EACH, fleet=fleet, name="web-02.tickets.chi1.sa")
    assert [a.id for a in second.actions] == [
        "directory:/etc/apps", "file:/etc/apps/solo.conf", "service:app@solo"]


def test_nodes_with_the_same_value_are_expanded_once(ws: Workspace) -> None:
    fleet = load_fleet(open_snapshot(str(repo(ws, FOR_EACH)), None))
    first, second = (compile_node(fleet, n) for n in fleet.node_names())
    assert resolve.actions(fleet, "web", first.variables) is \
        resolve.actions(fleet, "web", second.variables)


def test_an_action_with_its_own_variables_renders_with_them(ws: Workspace) -> None:
    body = ('  <file path="/etc/sa/app7.conf" template="app.j2">\n'
            '    <var name="app" type="map"><entry key="key">app7</entry>\n'
            '      <entry key="value" type="map"><entry key="port" type="int">7</entry></entry>\n'
            '    </var>\n'
            '  </file>\n'
            '  <file path="/etc/sa/plain.conf" template="plain.j2"/>\n')
    assert rendered(ws, body, {"templates/plain.j2": "{{ app is defined }}\n"}) == {
        "/etc/sa/app7.conf": "app7 on 7\n", "/etc/sa/plain.conf": "False\n"}


def test_an_action_variable_wins_over_the_nodes(ws: Workspace) -> None:
    body = ('  <var name="port" type="int">80</var>\n'
            '  <file path="/etc/a" template="p.j2"><var name="port" type="int">81</var></file>\n'
            '  <file path="/etc/b" template="p.j2"/>\n')
    assert rendered(ws, body, {"templates/p.j2": "{{ port }}\n"}) == {
        "/etc/a": "81\n", "/etc/b": "80\n"}


def test_a_requires_may_name_an_expanded_action(ws: Workspace) -> None:
    body = FOR_EACH + ('  <command name="reload-all" run="true"'
                       ' requires="file:/etc/apps/shop.conf"/>\n')
    assert node(ws, body).action("command:reload-all") is not None


@pytest.mark.parametrize(("body", "expected"), [
    ('  <file for-each="nothing" path="/etc/{item.key}"><content>x</content></file>\n',
     "classes/web.xml:2: for-each='nothing': no such variable on this node"),
    ('  <var name="one">x</var>\n'
     '  <file for-each="one" path="/etc/{item.key}"><content>x</content></file>\n',
     "classes/web.xml:3: for-each='one' is a string, not a list or map"),
    ('  <file for-each="apps" as="app" path="/etc/same" template="app.j2"/>\n',
     "classes/web.xml:2: for-each='apps' gives file:/etc/same twice: items apps[shop] and "
     "apps[cart]"),
    ('  <file for-each="apps" as="app" path="/etc/{app.value.port}/../x" template="app.j2"/>\n',
     "classes/web.xml:2: <file>: path '/etc/8001/../x' must not contain '..' "
     "(for-each item apps[shop])"),
    ('  <file for-each="apps" as="app" path="/etc/{app.value.host}" template="app.j2"/>\n',
     "classes/web.xml:2: {app.value.host}: app.value has no 'host' (for-each item apps[shop])"),
    ('  <file for-each="apps" as="app" path="/etc/{app.value}" template="app.j2"/>\n',
     "classes/web.xml:2: {app.value} is a map: name one of its values "
     "(for-each item apps[shop])"),
    ('  <package for-each="apps" as="app" name="App_{app.key}"/>\n',
     "classes/web.xml:2: <package> has an attribute value the schema refuses: "
     'name="App_shop" (for-each item apps[shop])'),
    ('  <file path="/etc/shop" template="a.j2"/>\n'
     '  <file for-each="apps" as="app" path="/etc/{app.key}" template="app.j2"/>\n',
     "classes/web.xml:3: file:/etc/shop is declared twice in class 'web' (also at "
     "classes/web.xml:2)"),
], ids=["unknown-variable", "not-a-list", "duplicate-paths", "non-canonical",
        "missing-field", "map-in-a-path", "schema-after-substitution", "clashes-with-own"])
def test_bad_expansions_are_reported_at_the_declaration(ws: Workspace, body: str,
                                                        expected: str) -> None:
    found = problems(ws, body, {"templates/a.j2": "a\n"})
    assert [p.removesuffix(f" (node {NODE})") for p in found][:1] == [expected]


@pytest.mark.parametrize(("body", "expected"), [
    ('  <file path="/etc/{app.key}" template="app.j2"/>\n',
     "classes/web.xml:2: path= holds the placeholder {app.key} outside a for-each"),
    ('  <file for-each="apps" path="/etc/{app.key}" template="app.j2"/>\n',
     "classes/web.xml:2: path= holds the placeholder {app.key}, but this for-each binds "
     "'item'"),
    ('  <file for-each="apps" as="app" path="/etc/{app}" template="app.j2"/>\n',
     "classes/web.xml:2: path= holds {app}: write {app.key}, {app.value} or "
     "{app.value.FIELD}"),
    ('  <file for-each="apps" as="node" path="/etc/{node.key}" template="app.j2"/>\n',
     "classes/web.xml:2: as='node' would hide the templates' own 'node': choose another name"),
    ('  <file path="/etc/a" template="app.j2"><var name="facts">x</var></file>\n',
     "classes/web.xml:2: variable 'facts' would hide the templates' own 'facts': choose "
     "another name"),
    ('  <file as="app" path="/etc/a" template="app.j2"/>\n',
     "classes/web.xml:2: as= needs for-each="),
], ids=["outside-for-each", "other-name", "bare-name", "reserved-as", "reserved-var",
        "as-without-for-each"])
def test_bad_declarations_are_refused_when_the_class_loads(ws: Workspace, body: str,
                                                          expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_fleet(open_snapshot(str(repo(ws, body)), None))
    assert [str(p) for p in caught.value.problems] == [expected]


def test_validate_names_the_nodes_an_expansion_fails_on(ws: Workspace) -> None:
    fleet = FLEET.replace("</fleet>", '  <node name="web-02.tickets.chi1.sa">\n'
                                      '    <var name="apps">none</var>\n  </node>\n</fleet>')
    path = repo(ws, FOR_EACH, fleet=fleet)
    done = ws.cli("validate", "--repo", path)
    assert done.code == 1
    assert done.err.splitlines() == [
        "classes/web.xml:4: for-each='apps' is a string, not a list or map "
        "(node web-02.tickets.chi1.sa)",
        "classes/web.xml:5: for-each='apps' is a string, not a list or map "
        "(node web-02.tickets.chi1.sa)",
        "invalid: 2 distinct problem(s)"]


def test_explain_names_each_expanded_action_and_its_item(ws: Workspace) -> None:
    done = ws.cli("explain", "--repo", repo(ws, FOR_EACH), NODE)
    assert done.code == 0, done.err
    table = done.out[done.out.index("actions"):]
    assert "file:/etc/apps/shop.conf" in table and "for apps[shop]" in table
    assert "service:app@cart" in table and "for apps[cart]" in table


def test_a_for_each_package_is_a_package(ws: Workspace) -> None:
    fleet = fleet_xml('  <defaults><var name="tools" type="map"><entry key="htop">3.2.*</entry>'
                      '</var></defaults>\n'
                      '  <nodes class="web" product="tickets" cluster="chi1" count="1"/>\n')
    config = node(ws, '  <package for-each="tools" as="t" name="{t.key}" version="{t.value}"/>\n',
                  fleet=fleet)
    assert config.actions == (PackageAction(
        id="package:htop", name="htop", version="3.2.*", severity=config.actions[0].severity,
        origin=config.actions[0].origin, declared_in="web", item="tools[htop]",
        vars={"t": {"key": "htop", "value": "3.2.*"}}),)


def test_a_for_each_that_gives_the_same_actions_changes_no_node(ws: Workspace) -> None:
    path = ws.make_repo({"fleet.xml": FLEET, "templates/app.j2": "{{ app.key }}\n",
                         "classes/web.xml": class_xml("web", (
                             '  <file path="/etc/shop" template="app.j2">\n'
                             '    <var name="app" type="map"><entry key="key">shop</entry></var>\n'
                             '  </file>\n'
                             '  <file path="/etc/cart" template="app.j2">\n'
                             '    <var name="app" type="map"><entry key="key">cart</entry></var>\n'
                             '  </file>\n'))})
    ws.write(path, {"classes/web.xml": class_xml(
        "web", '  <file for-each="apps" as="app" path="/etc/{app.key}" template="app.j2"/>\n')})
    ws.commit(path)
    done = ws.cli("plan", "--repo", path, "--base", "HEAD~1", "--head", "HEAD")
    assert (done.code, done.out.splitlines()[1]) == (0, "no node changes (2 nodes)"), done.out
