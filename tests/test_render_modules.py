"""Macros imported `with context` are built once per node and shared by its files
(render/modules.py): each file's macros still see exactly what that file's context
holds — the node's own variables, the action's variables, a `set` before the import,
its own facts placeholders."""

from __future__ import annotations

from configrepo import Workspace, class_xml, fleet_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.render.renderer import RenderedFile, Renderer, render_node
from reconciler.source.snapshot import open_snapshot

ONE, TWO = "web-01.shop.lab.t", "web-02.shop.lab.t"
FLEET = fleet_xml(
    '  <defaults><policy max-severity="restart"/><var name="greeting">hello</var></defaults>\n'
    '  <nodes class="web" product="shop" cluster="lab" count="2"/>\n'
    f'  <node name="{TWO}"><var name="greeting">howdy</var></node>\n', domain="t")
MACROS = ("{% macro banner() %}{{ greeting }} from {{ node.name }}{% endmacro %}"
          "{% macro cpus() %}{{ facts.cpu.count }}{% endmacro %}")
IMPORT = "{% import 'macros.j2' as m with context %}"


def fleet_of(ws: Workspace, files: str, templates: dict[str, str]) -> Fleet:
    repo = ws.make_repo({
        "fleet.xml": FLEET,
        "classes/web.xml": class_xml("web", files),
        "templates/macros.j2": MACROS,
        **{f"templates/{name}": text for name, text in templates.items()},
    })
    return load_fleet(open_snapshot(str(repo), None))


def render_all(renderer: Renderer, fleet: Fleet, *nodes: str) -> list[dict[str, RenderedFile]]:
    """Every node's files, rendered in order by one renderer (as a plan's worker does)."""
    found = []
    for name in nodes:
        files, problems = render_node(renderer, compile_node(fleet, name))
        assert problems == []
        found.append({item.path: item for item in files})
    return found


def contents(files: dict[str, RenderedFile]) -> dict[str, bytes | None]:
    return {path: item.content for path, item in files.items()}


def declared(template: str, *greetings: str | None) -> str:
    """File actions /etc/a, /etc/b, … of `template`, each with its own `greeting` when
    one is given."""
    return "".join(
        f'  <file path="/etc/{chr(ord("a") + index)}" template="{template}"/>\n'
        if greeting is None else
        f'  <file path="/etc/{chr(ord("a") + index)}" template="{template}">'
        f'<var name="greeting">{greeting}</var></file>\n'
        for index, greeting in enumerate(greetings))


def banners(*greetings: str) -> dict[str, bytes | None]:
    """What /etc/a, /etc/b, … of web-01 hold when their macros greet with `greetings`."""
    return {f"/etc/{chr(ord('a') + index)}": f"{greeting} from {ONE}\n".encode()
            for index, greeting in enumerate(greetings)}


def test_each_node_s_files_see_its_own_variables_through_shared_macros(ws: Workspace) -> None:
    fleet = fleet_of(ws, '  <file path="/etc/a" template="a.j2"/>\n'
                         '  <file path="/etc/b" template="b.j2"/>\n',
                     {"a.j2": IMPORT + "a: {{ m.banner() }}\n",
                      "b.j2": IMPORT + "b: {{ m.banner() }}\n"})

    one, two, again = render_all(Renderer(fleet), fleet, ONE, TWO, ONE)

    assert contents(one) == contents(again) == {"/etc/a": b"a: hello from web-01.shop.lab.t\n",
                                                "/etc/b": b"b: hello from web-01.shop.lab.t\n"}
    assert contents(two) == {"/etc/a": b"a: howdy from web-02.shop.lab.t\n",
                             "/etc/b": b"b: howdy from web-02.shop.lab.t\n"}


def test_an_action_s_own_variable_reaches_the_macros_of_its_file_only(ws: Workspace) -> None:
    fleet = fleet_of(ws, declared("a.j2", None, "hi", None),
                     {"a.j2": IMPORT + "{{ m.banner() }}\n"})

    (one,) = render_all(Renderer(fleet), fleet, ONE)

    assert contents(one) == banners("hello", "hi", "hello")


def test_a_variable_set_before_the_import_reaches_the_macros(ws: Workspace) -> None:
    fleet = fleet_of(ws, '  <file path="/etc/a" template="a.j2"/>\n'
                         '  <file path="/etc/b" template="b.j2"/>\n'
                         '  <file path="/etc/c" template="c.j2"/>\n',
                     {"a.j2": IMPORT + "{{ m.banner() }}\n",
                      "b.j2": "{% set greeting = 'hey' %}" + IMPORT + "{{ m.banner() }}\n",
                      "c.j2": "{% for greeting in ['yo'] %}" + IMPORT + "{{ m.banner() }}"
                              "{% endfor %}\n"})

    (one,) = render_all(Renderer(fleet), fleet, ONE)

    assert contents(one) == banners("hello", "hey", "yo")


def test_each_file_is_marked_with_the_unknown_facts_its_macros_print(ws: Workspace) -> None:
    fleet = fleet_of(ws, declared("a.j2", None, None),
                     {"a.j2": IMPORT + "workers {{ m.cpus() }}\n"})

    (one,) = render_all(Renderer(fleet), fleet, ONE)

    assert {path: (item.content, item.unknown_facts) for path, item in one.items()} == {
        path: (b"workers (facts.cpu.count)\n", ("facts.cpu.count",))
        for path in ("/etc/a", "/etc/b")}


def test_macros_that_include_a_computed_name_see_each_file_s_variables(ws: Workspace) -> None:
    fleet = fleet_of(ws, declared("a.j2", None, "hi"),
                     {"a.j2": "{% import 'parts.j2' as p with context %}{{ p.body() }}\n",
                      "parts.j2": "{% macro body() %}{% include 'x' ~ '.j2' %}{% endmacro %}",
                      "x.j2": "{{ greeting }} for {{ node.host }}"})

    one, two = render_all(Renderer(fleet), fleet, ONE, TWO)

    assert contents(one) == {"/etc/a": b"hello for web-01\n", "/etc/b": b"hi for web-01\n"}
    assert contents(two) == {"/etc/a": b"howdy for web-02\n", "/etc/b": b"hi for web-02\n"}


def test_macros_take_keywords_extra_arguments_and_a_caller(ws: Workspace) -> None:
    fleet = fleet_of(ws, declared("a.j2", None),
                     {"a.j2": "{% import 'calls.j2' as c with context %}"
                              "{{ c.pair(b=2, a=1) }} {{ c.rest(1, 2, 3, x=4) }} "
                              "{% call(word) c.around('[') %}{{ word }} {{ greeting }}"
                              "{% endcall %}\n",
                      "calls.j2": "{% macro pair(a, b) %}{{ a }}-{{ b }}{% endmacro %}"
                                  "{% macro rest(first) %}{{ first }} {{ varargs }} "
                                  "{{ kwargs }}{% endmacro %}"
                                  "{% macro around(left) %}{{ left }}{{ caller('hi') }}]"
                                  "{% endmacro %}"})

    (one,) = render_all(Renderer(fleet), fleet, ONE)

    assert contents(one) == {"/etc/a": b"1-2 1 (2, 3) {'x': 4} [hi hello]\n"}


def test_macros_whose_includes_do_not_load_fail_only_where_they_are_called(
        ws: Workspace) -> None:
    fleet = fleet_of(ws, declared("a.j2", None, None),
                     {"a.j2": "{% import 'parts.j2' as p with context %}{{ p.fine() }}\n",
                      "parts.j2": "{% macro fine() %}{{ greeting }}{% endmacro %}"
                                  "{% macro broken() %}{% include 'missing.j2' %}{% endmacro %}"
                                  "{% macro odd() %}{% include 'bad.j2' %}{% endmacro %}",
                      "bad.j2": "{% if %}"})

    (one,) = render_all(Renderer(fleet), fleet, ONE)

    assert contents(one) == {"/etc/a": b"hello\n", "/etc/b": b"hello\n"}
