"""The renderer: sandboxed Jinja2 over the repo's templates/, errors as `path:line`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import jinja2
import pytest
from configrepo import BASIC, Workspace, class_xml, fleet_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.render.renderer import RenderedFile, Renderer, render_node
from reconciler.render.sandbox import SnapshotLoader
from reconciler.source.snapshot import open_snapshot

Files = Mapping[str, str | bytes | None]
NODE = "web-01.tickets.chi1.sa"


def fleet_at(repo: Path, rev: str | None = None) -> Fleet:
    return load_fleet(open_snapshot(str(repo), rev))


def render(fleet: Fleet, node: str = NODE) -> tuple[dict[str, RenderedFile], list[str]]:
    files, problems = render_node(Renderer(fleet), compile_node(fleet, node))
    return {f.path: f for f in files}, [str(p) for p in problems]


def rendered(ws: Workspace, files: Files, node: str = NODE) -> dict[str, bytes | None]:
    out, problems = render(fleet_at(ws.make_repo({**BASIC, **files}, commit=False)), node)
    assert problems == []
    return {path: item.content for path, item in out.items()}


def problems(ws: Workspace, files: Files) -> list[str]:
    return render(fleet_at(ws.make_repo({**BASIC, **files}, commit=False)))[1]


WITHOUT_MOTD = {**{k: v for k, v in BASIC.items() if k != "templates/base/motd.j2"},
                "templates/base/README": "the motd template is a symlink made by the test\n"}


def with_motd(template: str, **more: str) -> dict[str, str]:
    return {"templates/base/motd.j2": template, **more}


def test_template_sees_variables_and_node_identity(ws: Workspace) -> None:
    out = rendered(ws, with_motd("{{ greeting }} {{ node.host }} {{ node.cls }} {{ node.number }}"
                                 " {{ node.product }} {{ node.cluster }} {{ node.domain }}\n"))
    assert out["/etc/motd"] == b"hello web-01 web 1 tickets chi1 sa\n"


def test_include_import_and_macros_between_templates(ws: Workspace) -> None:
    out = rendered(ws, with_motd(
        '{% import "common/macros.j2" as m %}{% from "common/macros.j2" import kv %}'
        '{{ m.kv("a", 1) }}{{ kv("b", 2) }}{% include "common/footer.j2" %}',
        **{"templates/common/macros.j2": "{% macro kv(k, v) %}{{ k }}={{ v }}\n{% endmacro %}",
           "templates/common/footer.j2": "-- {{ greeting }}\n"}))
    assert out["/etc/motd"] == b"a=1\nb=2\n-- hello\n"


def test_template_extends_a_base_template(ws: Workspace) -> None:
    out = rendered(ws, with_motd(
        '{% extends "common/layout.j2" %}{% block body %}body{% endblock %}',
        **{"templates/common/layout.j2": "head\n{% block body %}{% endblock %}\n"}))
    assert out["/etc/motd"] == b"head\nbody\n"


def test_nodes_lists_the_fleet_filtered_by_class_and_cluster(ws: Workspace) -> None:
    out = rendered(ws, {
        "fleet.xml": fleet_xml(
            '  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n'
            '  <nodes class="app" product="tickets" cluster="chi1" count="3"/>\n'
            '  <nodes class="app" product="tickets" cluster="lax2" count="1"/>\n'),
        "classes/app.xml": class_xml("app", "", "base"),
        "templates/base/motd.j2": "{% for n in nodes(cls='app', cluster=node.cluster) %}"
                                  "server {{ n }};\n{% endfor %}{{ nodes(product='tickets')"
                                  "|length }}\n",
    })
    assert out["/etc/motd"] == (b"server app-01.tickets.chi1.sa;\nserver app-02.tickets.chi1.sa;\n"
                                b"server app-03.tickets.chi1.sa;\n6\n")


def test_loops_and_conditionals_over_lists_and_maps(ws: Workspace) -> None:
    out = rendered(ws, {
        "fleet.xml": fleet_xml('''\
  <defaults>
    <var name="servers" type="list"><item>a</item><item>b</item></var>
    <var name="limits" type="map"><entry key="x" type="int">1</entry></var>
    <var name="gzip" type="bool">false</var>
  </defaults>
  <nodes class="web" product="tickets" cluster="chi1" count="1"/>
'''),
        "templates/base/motd.j2": "{% for s in servers %}{{ s }};{% endfor %}"
                                  "{% for k, v in limits|dictsort %}{{ k }}={{ v + 1 }}{% endfor %}"
                                  "{% if not gzip %} nogzip{% endif %}\n",
    })
    assert out["/etc/motd"] == b"a;b;x=2 nogzip\n"


def test_each_template_is_loaded_once_per_revision_across_nodes(ws: Workspace) -> None:
    repo = ws.make_repo({
        **BASIC,
        "fleet.xml": fleet_xml(
            '  <nodes class="web" product="tickets" cluster="chi1" count="50"/>\n'),
        "templates/base/motd.j2": '{% include "common/part.j2" %}{{ node.name }}\n',
        "templates/common/part.j2": "part ",
    })
    fleet = fleet_at(repo)
    loads: list[str] = []

    class CountingLoader(SnapshotLoader):
        def get_source(
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str | None, Callable[[], bool] | None]:
            loads.append(template)
            return super().get_source(environment, template)

    renderer = Renderer(fleet)
    renderer.env.loader = CountingLoader(fleet.snapshot)
    for name in fleet.node_names():
        files, found = render_node(renderer, compile_node(fleet, name))
        assert found == [] and files[0].content == f"part {name}\n".encode()
    assert sorted(loads) == ["base/motd.j2", "common/part.j2"]


def test_inline_content_and_source_are_not_templated(ws: Workspace) -> None:
    out = rendered(ws, {
        "classes/web.xml": class_xml(
            "web", '  <file path="/etc/a"><content>{{ x }}</content></file>\n'
                   '  <file path="/etc/b" source="web/raw.txt"/>\n'
                   '  <file path="/etc/c" ensure="absent"/>\n', "base"),
        "templates/web/raw.txt": "{{ y }}\n",
    })
    assert (out["/etc/a"], out["/etc/b"], out["/etc/c"]) == (b"{{ x }}", b"{{ y }}\n", None)


def test_tree_renders_j2_files_and_copies_the_rest(ws: Workspace) -> None:
    out = rendered(ws, {
        "classes/web.xml": class_xml("web", '  <tree path="/etc/app" source="web/app"/>\n', "base"),
        "templates/web/app/plain.conf": "{{ raw }}\n",
        "templates/web/app/sub/greet.conf.j2": "{{ greeting }}\n",
    })
    assert out["/etc/app/plain.conf"] == b"{{ raw }}\n"
    assert out["/etc/app/sub/greet.conf"] == b"hello\n"


def test_file_inside_a_tree_managed_twice_is_an_error(ws: Workspace) -> None:
    assert problems(ws, {
        "classes/web.xml": class_xml(
            "web", '  <tree path="/etc/app" source="web/app"/>\n'
                   '  <file path="/etc/app/a"><content/></file>\n', "base"),
        "templates/web/app/a": "a\n",
    }) == ["classes/web.xml:3: /etc/app/a is managed twice: by file:/etc/app/a and "
           "tree:/etc/app (at classes/web.xml:2) (node web-01.tickets.chi1.sa, file:/etc/app/a)"]


def test_missing_template_is_reported_at_the_action_line(ws: Workspace) -> None:
    assert problems(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x" template="web/nope.j2"/>\n', "base")}) == [
        "classes/web.xml:2: template templates/web/nope.j2 not found "
        "(node web-01.tickets.chi1.sa, file:/etc/x)"]


def test_missing_include_is_reported_at_the_including_line(ws: Workspace) -> None:
    assert problems(ws, with_motd('a\n{% include "base/nope.j2" %}\n')) == [
        "templates/base/motd.j2:2: template templates/base/nope.j2 not found "
        "(node web-01.tickets.chi1.sa)"]


def test_syntax_error_names_template_and_line(ws: Workspace) -> None:
    assert problems(ws, with_motd("ok\nok\n{% if %}\n")) == [
        "templates/base/motd.j2:3: template syntax error: Expected an expression, got 'end of "
        "statement block' (node web-01.tickets.chi1.sa)"]


def test_syntax_error_in_an_included_template_names_that_template(ws: Workspace) -> None:
    assert problems(ws, with_motd('{% include "common/bad.j2" %}\n',
                                  **{"templates/common/bad.j2": "x\n{{ }}\n"})) == [
        "templates/common/bad.j2:2: template syntax error: Expected an expression, got "
        "'end of print statement' (node web-01.tickets.chi1.sa)"]


MAP_FLEET = fleet_xml('''\
  <defaults>
    <var name="limits" type="map"><entry key="x" type="int">1</entry></var>
  </defaults>
  <nodes class="web" product="tickets" cluster="chi1" count="1"/>
''')


def test_map_keys_read_as_attributes(ws: Workspace) -> None:
    out = rendered(ws, {"fleet.xml": MAP_FLEET,
                        "templates/base/motd.j2": "{{ limits.x }} {{ limits.keys()|list }}\n"})
    assert out["/etc/motd"] == b"1 ['x']\n"


def test_missing_map_key_read_as_an_attribute_is_an_error(ws: Workspace) -> None:
    assert problems(ws, {"fleet.xml": MAP_FLEET, "templates/base/motd.j2": "{{ limits.y }}\n"}) == [
        "templates/base/motd.j2:1: undefined variable: 'dict object' has no attribute 'y' "
        "(node web-01.tickets.chi1.sa)"]


def test_undefined_variable_names_template_line_and_node(ws: Workspace) -> None:
    assert problems(ws, with_motd("a\nb\n{{ nope }}\n")) == [
        "templates/base/motd.j2:3: undefined variable: 'nope' is undefined; did you mean "
        "'node'? (node web-01.tickets.chi1.sa)"]


def test_undefined_variable_in_a_macro_points_at_the_macro(ws: Workspace) -> None:
    assert problems(ws, with_motd(
        '{% import "common/m.j2" as m %}{{ m.f() }}\n',
        **{"templates/common/m.j2": "{% macro f() %}\n{{ missing }}\n{% endmacro %}\n"})) == [
        "templates/common/m.j2:2: undefined variable: 'missing' is undefined "
        "(node web-01.tickets.chi1.sa)"]


@pytest.mark.parametrize("expression", [
    "''.__class__.__mro__",
    "greeting|attr('__class__')",
    "cycler.__init__.__globals__",
    "nodes.__globals__",
    "node.__class__",
    "{}.__class__",
    "'{0.__class__.__mro__}'.format(node)",
    "'{x.__class__}'.format_map({'x': node})",
    "'{0.__class__}'['format'](greeting)",
    "('{0.__class__}'|attr('format'))(greeting)",
])
def test_sandbox_escape_attempts_are_refused(ws: Workspace, expression: str) -> None:
    [problem] = problems(ws, with_motd(f"x\n{{{{ {expression} }}}}\n"))
    assert problem.startswith("templates/base/motd.j2:2: unsafe ")
    assert "refused by the sandbox" in problem


def test_include_that_leaves_templates_with_dotdot_is_refused(ws: Workspace) -> None:
    assert problems(ws, with_motd('{% include "../fleet.xml" %}\n')) == [
        "templates/base/motd.j2:1: template '../fleet.xml' leaves the repo ('..' is not allowed) "
        "(node web-01.tickets.chi1.sa)"]


def test_template_symlink_out_of_the_repo_is_refused_in_the_working_tree(ws: Workspace) -> None:
    secret = ws.tmp / "secret.txt"
    secret.write_text("root:x:0:0\n")
    repo = ws.make_repo(WITHOUT_MOTD, commit=False)
    os.symlink(secret, repo / "templates/base/motd.j2")
    out, found = render(fleet_at(repo))
    assert found == ["classes/base.xml:2: templates/base/motd.j2 is a symlink that leaves the "
                     "repo (node web-01.tickets.chi1.sa, file:/etc/motd)"]
    assert out == {}


def test_symlinked_directory_out_of_the_repo_is_refused_in_a_commit(ws: Workspace) -> None:
    outside = ws.tmp / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    repo = ws.make_repo({**BASIC, "classes/base.xml": class_xml(
        "base", '  <file path="/etc/motd" template="leak/passwd"/>\n')}, commit=False)
    os.symlink("../../outside", repo / "templates/leak")
    ws.commit(repo)
    (repo / "templates/leak").unlink()  # the working tree no longer has it: read the commit
    _, found = render(fleet_at(repo, "HEAD"))
    assert found == ["classes/base.xml:2: templates/leak/passwd is a symlink that leaves the "
                     "repo (node web-01.tickets.chi1.sa, file:/etc/motd)"]


def test_template_symlink_out_of_the_repo_is_refused_in_a_commit(ws: Workspace) -> None:
    repo = ws.make_repo(WITHOUT_MOTD, commit=False)
    os.symlink("/etc/passwd", repo / "templates/base/motd.j2")
    ws.commit(repo)
    _, found = render(fleet_at(repo, "HEAD"))
    assert found == ["classes/base.xml:2: templates/base/motd.j2 is a symlink that leaves the "
                     "repo (node web-01.tickets.chi1.sa, file:/etc/motd)"]


def test_symlink_that_stays_inside_the_repo_is_followed(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "classes/base.xml": class_xml(
        "base", '  <file path="/etc/motd" template="alias/motd.j2"/>\n')}, commit=False)
    os.symlink("base", repo / "templates/alias")
    ws.commit(repo)
    for rev in (None, "HEAD"):
        out, found = render(fleet_at(repo, rev))
        assert found == [] and out["/etc/motd"].content == b"hello from web-01.tickets.chi1.sa\n"


def test_every_node_gets_its_own_problems_and_files(ws: Workspace) -> None:
    fleet = fleet_at(ws.make_repo({
        **BASIC,
        "fleet.xml": fleet_xml('  <nodes class="web" product="tickets" cluster="chi1" count="2"/>\n'
                               '  <node name="web-02.tickets.chi1.sa"><var name="extra">x</var>'
                               '</node>\n'),
        "templates/base/motd.j2": "{{ extra }}\n",
    }, commit=False))
    assert render(fleet, "web-02.tickets.chi1.sa")[1] == []
    assert render(fleet, "web-01.tickets.chi1.sa")[1] == [
        "templates/base/motd.j2:1: undefined variable: 'extra' is undefined "
        "(node web-01.tickets.chi1.sa)"]
