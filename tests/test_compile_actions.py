"""The compiler on actions: paths in one canonical spelling inside the node, requires and
notify that name real actions without a cycle, and every action kind with its
attributes or its mistake as `path:line: message`."""

from __future__ import annotations

from compile_support import node_of, problems_of
from configrepo import Workspace, class_xml

from reconciler.compile.nodeconfig import (
    CommandAction,
    FileAction,
    Notify,
    PackageAction,
    ServiceAction,
    Severity,
    SymlinkAction,
    TreeAction,
)


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
