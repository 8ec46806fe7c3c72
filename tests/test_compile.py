"""The compiler: a config repo (real files) becomes one NodeConfig per node, or every
problem it has, each as `path:line: message`."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from configrepo import BASIC, Workspace, class_xml, fleet_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.compile.nodeconfig import (
    CommandAction,
    FileAction,
    NodeConfig,
    Notify,
    PackageAction,
    ServiceAction,
    Severity,
    SymlinkAction,
    TreeAction,
)
from reconciler.errors import ConfigError, UsageError
from reconciler.source.snapshot import open_snapshot

Files = Mapping[str, str | bytes | None]


def fleet_of(ws: Workspace, files: Files) -> Fleet:
    repo = ws.make_repo({**BASIC, **files}, commit=False)
    return load_fleet(open_snapshot(str(repo), None))


def node_of(ws: Workspace, files: Files, name: str = "web-01.tickets.chi1.sa") -> NodeConfig:
    return compile_node(fleet_of(ws, files), name)


def problems_of(ws: Workspace, files: Files) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        fleet_of(ws, files)
    return [str(p) for p in caught.value.problems]


# ---------------------------------------------------------------- nodes


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


def test_path_spelled_another_way_is_refused_with_its_canonical_form(ws: Workspace) -> None:
    # /etc//x and /etc/./x would name the same file as /etc/x: only one spelling is accepted,
    # so two actions on one file always collide by id.
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x"><content/></file>\n'
               '  <file path="/etc//x"><content/></file>\n'
               '  <directory path="/etc/./d"/>\n'
               '  <symlink path="/etc/l/" target="/x"/>\n', "base")}) == [
        "classes/web.xml:3: <file>: path '/etc//x' is not in canonical form: write '/etc/x'",
        "classes/web.xml:4: <directory>: path '/etc/./d' is not in canonical form: "
        "write '/etc/d'",
        "classes/web.xml:5: <symlink>: path '/etc/l/' is not in canonical form: write '/etc/l'",
    ]


def test_relative_action_path_is_refused(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="etc/x"><content/></file>\n', "base")}) == [
        "classes/web.xml:2: <file>: path 'etc/x' must be absolute"]


def test_action_path_with_dotdot_is_refused(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <directory path="/srv/../etc"/>\n', "base")}) == [
        "classes/web.xml:2: <directory>: path '/srv/../etc' must not contain '..'"]


def test_nul_byte_in_a_path_cannot_even_be_written_in_xml(ws: Workspace) -> None:
    [problem] = problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <directory path="/srv&#0;x"/>\n', "base")})
    assert problem.startswith("classes/web.xml:2: malformed XML:")


def test_template_reference_that_leaves_the_repo_is_refused(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x" template="../fleet.xml"/>\n', "base")}) == [
        "classes/web.xml:2: <file>: template '../fleet.xml' leaves the repo ('..' is not allowed)"]


def test_requires_and_notify_of_unknown_actions_are_errors(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <package name="nginx" requires="package:ghost"/>\n'
               '  <file path="/etc/x" notify="service:nginx:reload"><content/></file>\n',
        "base")}) == [
        "classes/web.xml:2: requires unknown action 'package:ghost' (package:nginx)",
        "classes/web.xml:3: notifies unknown action 'service:nginx' (file:/etc/x)",
    ]


def test_dependency_cycle_is_an_error_naming_the_cycle(ws: Workspace) -> None:
    [problem] = problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <package name="aa" requires="package:cc"/>\n'
               '  <package name="bb" requires="package:aa"/>\n'
               '  <package name="cc" requires="package:bb"/>\n', "base")})
    assert problem.startswith("classes/web.xml:")
    assert "dependency cycle: " in problem
    assert all(f"package:{n}" in problem for n in ("aa", "bb", "cc"))


def test_action_requiring_itself_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <package name="aa" requires="package:aa"/>\n', "base")}) == [
        "classes/web.xml:2: package:aa requires itself"]


def test_bad_notify_target_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <directory path="/srv" notify="file:/etc/x"/>\n', "base")}) == [
        "classes/web.xml:2: <directory>: notify target 'file:/etc/x' must be "
        "service:NAME[:reload|:restart] or command:NAME"]


def test_missing_deb_file_is_an_error_at_the_package(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <package name="app" deb="web/app_1.0_all.deb"/>\n', "base")}) == [
        "classes/web.xml:2: deb file templates/web/app_1.0_all.deb not found (package:app)"]


EVERY_KIND = '''\
  <package name="nginx" version="1.22.*" severity="reboot"/>
  <package name="app" deb="web/app_1.0_all.deb"/>
  <package name="telnet" ensure="absent"/>
  <file path="/etc/a" template="base/motd.j2" mode="0640" owner="root" group="adm"
        severity="reload" requires="package:nginx" notify="service:nginx:reload command:rebuild"
        validate="/usr/sbin/nginx -t -c %s" secret="true"/>
  <file path="/etc/b" source="web/b.txt"/>
  <file path="/etc/c"><content>inline {{ not a template }}</content></file>
  <file path="/etc/d" ensure="absent"/>
  <tree path="/etc/t" source="web" mode="0644" dir-mode="0755" owner="root" group="root"
        secret="true"/>
  <directory path="/var/x" mode="0750" owner="www-data" group="www-data"/>
  <symlink path="/etc/l" target="/etc/a"/>
  <service name="nginx" enabled="true" notify="service:app:restart service:app"/>
  <service name="app" backend="command" state="stopped" enabled="false" severity="reload">
    <status>pgrep app</status>
    <start>app start</start>
    <stop>app stop</stop>
    <reload>app reload</reload>
    <is-enabled>test -e /etc/app.on</is-enabled>
  </service>
  <service name="cron" state="unmanaged"/>
  <command name="rebuild" run="make -C /srv" refresh-only="true" timeout="30" cwd="/srv"
           creates="/srv/out" unless="test -e /x" onlyif="true">
    <env name="LANG">C</env>
    <env name="MODE">fast</env>
  </command>
'''


def test_every_action_kind_parses_with_its_attributes(ws: Workspace) -> None:
    config = node_of(ws, {
        "classes/web.xml": class_xml("web", EVERY_KIND, "base"),
        "templates/web/app_1.0_all.deb": b"!<arch>\n",
        "templates/web/b.txt": "b\n",
    })
    get = config.action
    nginx = get("package:nginx")
    assert isinstance(nginx, PackageAction)
    assert (nginx.version, nginx.severity, nginx.ensure) == ("1.22.*", Severity.REBOOT, "present")
    app_pkg = get("package:app")
    assert isinstance(app_pkg, PackageAction) and app_pkg.deb == "web/app_1.0_all.deb"
    assert app_pkg.severity == Severity.RESTART
    telnet = get("package:telnet")
    assert isinstance(telnet, PackageAction) and telnet.ensure == "absent"

    a = get("file:/etc/a")
    assert isinstance(a, FileAction)
    assert (a.template, a.mode, a.owner, a.group, a.severity, a.secret) == (
        "base/motd.j2", 0o640, "root", "adm", Severity.RELOAD, True)
    assert a.requires == ("package:nginx",)
    assert a.notify == (Notify(target="service:nginx", verb="reload"),
                        Notify(target="command:rebuild", verb="run"))
    assert a.validate_cmd == "/usr/sbin/nginx -t -c %s"
    # libxml2 records the line where a start tag ends: the last line of a long element
    assert (a.origin.path, a.origin.line) == ("classes/web.xml", 7)
    b, c, d = get("file:/etc/b"), get("file:/etc/c"), get("file:/etc/d")
    assert isinstance(b, FileAction) and b.source == "web/b.txt" and b.severity == Severity.NONE
    assert isinstance(c, FileAction) and c.content == "inline {{ not a template }}"
    assert isinstance(d, FileAction) and d.ensure == "absent"

    tree = get("tree:/etc/t")
    assert isinstance(tree, TreeAction)
    assert (tree.source, tree.mode, tree.dir_mode, tree.secret) == ("web", 0o644, 0o755, True)
    directory = get("directory:/var/x")
    assert directory is not None and directory.model_dump()["mode"] == 0o750
    link = get("symlink:/etc/l")
    assert isinstance(link, SymlinkAction) and link.target == "/etc/a"

    nginx_svc = get("service:nginx")
    assert isinstance(nginx_svc, ServiceAction)
    assert (nginx_svc.state, nginx_svc.enabled, nginx_svc.backend) == ("running", True, "systemd")
    assert nginx_svc.notify == (Notify(target="service:app", verb="restart"),) * 2
    app = get("service:app")
    assert isinstance(app, ServiceAction) and app.commands is not None
    assert (app.backend, app.state, app.enabled, app.severity) == (
        "command", "stopped", False, Severity.RELOAD)
    assert (app.commands.status, app.commands.start, app.commands.stop) == (
        "pgrep app", "app start", "app stop")
    assert (app.commands.reload, app.commands.restart, app.commands.is_enabled) == (
        "app reload", None, "test -e /etc/app.on")
    cron = get("service:cron")
    assert isinstance(cron, ServiceAction) and cron.state is None

    rebuild = get("command:rebuild")
    assert isinstance(rebuild, CommandAction)
    assert (rebuild.run, rebuild.refresh_only, rebuild.timeout, rebuild.cwd) == (
        "make -C /srv", True, 30.0, "/srv")
    assert (rebuild.creates, rebuild.unless, rebuild.onlyif) == ("/srv/out", "test -e /x", "true")
    assert rebuild.env == (("LANG", "C"), ("MODE", "fast"))


def test_present_file_without_content_source_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x"/>\n', "base")}) == [
        "classes/web.xml:2: <file>: a present file needs template=, source= or <content>"]


def test_validate_command_without_placeholder_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x" validate="nginx -t"><content/></file>\n', "base")}) == [
        "classes/web.xml:2: <file>: validate= must contain %s (the new file's path; %% is a "
        "percent sign)"]


def test_validate_command_with_only_an_escaped_percent_s_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x" validate="grep -q %%s x"><content/></file>\n',
        "base")}) == [
        "classes/web.xml:2: <file>: validate= must contain %s (the new file's path; %% is a "
        "percent sign)"]


def test_present_symlink_without_target_is_an_error(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <symlink path="/etc/l"/>\n', "base")}) == [
        "classes/web.xml:2: <symlink>: a present symlink needs target="]


def test_command_service_without_its_commands_is_a_schema_error(ws: Workspace) -> None:
    [*problems] = problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <service name="x" backend="command"><status>true</status></service>\n',
        "base")})
    assert problems and all(p.startswith("classes/web.xml:2: ") for p in problems)


# ---------------------------------------------------------------- XML safety


def test_malformed_xml_names_file_and_line(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": '<fleet domain="sa">\n  <nodes>\n</fleet>\n'}) == [
        "fleet.xml:3: malformed XML: Opening and ending tag mismatch: nodes line 2 and fleet"]


def test_doctype_with_entities_is_refused_before_parsing(ws: Workspace) -> None:
    laughs = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
              ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
              ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
              '<fleet domain="sa"><defaults><var name="x">&lol3;</var></defaults></fleet>\n')
    assert problems_of(ws, {"fleet.xml": laughs}) == [
        "fleet.xml:2: DOCTYPE declarations are not allowed (no DTDs, no entities)"]


def test_external_entity_is_refused(ws: Workspace) -> None:
    xxe = ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
           '<class name="web">&e;</class>\n')
    assert problems_of(ws, {"classes/web.xml": xxe}) == [
        "classes/web.xml:1: DOCTYPE declarations are not allowed (no DTDs, no entities)"]


def test_unknown_element_is_reported_once_at_its_line(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '  <package name="nginx"/>\n  <bogus/>\n', "base")}) == [
        "classes/web.xml:3: did not expect element bogus there"]


def test_unknown_attribute_is_reported_at_its_line(ws: Workspace) -> None:
    assert problems_of(ws, {"classes/web.xml": class_xml(
        "web", '\n  <package name="nginx" colour="red"/>\n', "base")}) == [
        "classes/web.xml:3: invalid attribute colour for element package"]


def test_bad_attribute_value_is_reported_precisely_once(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml(
        '  <defaults><policy interval="-1"/></defaults>\n')}) == [
        "fleet.xml:2: invalid attribute interval for element policy"]


def test_attribute_value_libxml2_cannot_pin_down_lists_the_values(ws: Workspace) -> None:
    assert problems_of(ws, {"fleet.xml": fleet_xml(
        '  <nodes class="Web" product="p" cluster="c" count="1"/>\n')}) == [
        'fleet.xml:2: <nodes> has an attribute value the schema refuses: class="Web" '
        'product="p" cluster="c" count="1"']


def test_problems_in_several_files_are_all_reported(ws: Workspace) -> None:
    found = problems_of(ws, {
        "fleet.xml": fleet_xml('  <node name="nope"/>\n  <nodes class="ghost" product="p" '
                               'cluster="c" count="1"/>\n'),
        "classes/web.xml": class_xml("web", '  <file path="x"><content/></file>\n', "base"),
    })
    assert found == [
        "classes/web.xml:2: <file>: path 'x' must be absolute",
        "fleet.xml:3: unknown class 'ghost' (no classes/ghost.xml)",
        "fleet.xml:2: bad node name 'nope': expected class-NN.product.cluster.domain",
    ]


XI = 'xmlns:xi="http://www.w3.org/2001/XInclude"'


def test_xinclude_inside_the_repo_works_and_keeps_provenance(ws: Workspace) -> None:
    config = node_of(ws, {
        "fleet.xml": f'<fleet domain="sa" {XI}>\n  <xi:include href="fleet/chi1.xml"/>\n</fleet>\n',
        "fleet/chi1.xml": '<nodes class="web" product="tickets" cluster="chi1" count="1">\n'
                          '  <var name="port" type="int">81</var>\n</nodes>\n',
    })
    port = config.variables["port"]
    assert (port.value, str(port.set_by.origin)) == (81, "fleet/chi1.xml:2")


def test_error_in_an_included_file_points_at_that_file(ws: Workspace) -> None:
    assert problems_of(ws, {
        "fleet.xml": f'<fleet domain="sa" {XI}>\n  <xi:include href="fleet/chi1.xml"/>\n</fleet>\n',
        "fleet/chi1.xml": '<nodes class="web" product="tickets" cluster="chi1" count="1">\n\n'
                          '  <var name="port" type="int">eighty</var>\n'
                          '  <bogus/>\n</nodes>\n',
    }) == ["fleet/chi1.xml:4: element nodes has extra content: bogus"]


@pytest.mark.parametrize(("href", "message"), [
    ("../outside.xml", "xi:include href '../outside.xml' leaves the repo ('..' is not allowed)"),
    ("/etc/passwd", "xi:include href '/etc/passwd' must be relative to the repo"),
    ("http://127.0.0.1:9/x.xml", "xi:include href 'http://127.0.0.1:9/x.xml' must be a path "
                                 "inside the repo"),
    ("file:///etc/passwd", "xi:include href 'file:///etc/passwd' must be a path inside the repo"),
])
def test_xinclude_outside_the_repo_or_of_a_url_is_refused(
    ws: Workspace, href: str, message: str
) -> None:
    (ws.tmp / "outside.xml").write_text('<node name="web-01.p.c.sa"/>\n')
    assert problems_of(ws, {
        "fleet.xml": f'<fleet domain="sa" {XI}>\n\n  <xi:include href="{href}"/>\n</fleet>\n',
    }) == [f"fleet.xml:3: {message}"]


def test_xinclude_cycle_is_refused(ws: Workspace) -> None:
    [problem] = problems_of(ws, {
        "fleet.xml": f'<fleet domain="sa" {XI}>\n  <xi:include href="a.xml"/>\n</fleet>\n',
        "a.xml": f'<vars {XI}>\n  <xi:include href="a.xml"/>\n</vars>\n',
    })
    assert problem == "a.xml:2: xi:include cycle: fleet.xml -> a.xml -> a.xml"
