"""The compiler on hostile or broken XML: malformed files, entities, unknown elements and
attributes, each named at its file and line once; XInclude only of files inside the
repo."""

from __future__ import annotations

import pytest
from compile_support import node_of, problems_of
from configrepo import Workspace, class_xml, fleet_xml


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
