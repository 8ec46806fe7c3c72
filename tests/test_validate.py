"""validate(): the whole revision checked, every problem listed, identical ones grouped."""

from __future__ import annotations

from configrepo import BASIC, Workspace, class_xml, fleet_xml

from reconciler.review.validate import MAX_REPORTED, ValidationResult, validate
from reconciler.source.snapshot import open_snapshot


def check(ws: Workspace, files: dict[str, str], jobs: int = 1) -> ValidationResult:
    repo = ws.make_repo({**BASIC, **files}, commit=False)
    return validate(open_snapshot(str(repo), None), jobs)


def test_valid_repo_counts_nodes_classes_and_files(ws: Workspace) -> None:
    result = check(ws, {})
    assert result.ok
    assert (result.nodes, result.classes, result.files) == (3, 2, 3)


def test_identical_problem_on_many_nodes_is_reported_once_with_a_count(ws: Workspace) -> None:
    result = check(ws, {"templates/base/motd.j2": "{{ nope }}\n"})
    [finding] = result.findings
    assert finding.nodes == 3
    assert str(finding.problem) == ("templates/base/motd.j2:1: undefined variable: 'nope' is "
                                    "undefined; did you mean 'node'? (node web-01.events.lax2.sa)")


def test_distinct_render_problems_are_all_reported(ws: Workspace) -> None:
    result = check(ws, {
        "classes/web.xml": class_xml(
            "web", '  <file path="/etc/a" template="web/a.j2"/>\n'
                   '  <file path="/etc/b" template="web/b.j2"/>\n'
                   '  <file path="/etc/c" template="web/c.j2"/>\n', "base"),
        "templates/web/a.j2": "{{ undefined_a }}\n",
        "templates/web/b.j2": "{% for %}\n",
    })
    assert sorted(str(f.problem).split(" (node")[0] for f in result.findings) == [
        "classes/web.xml:4: template templates/web/c.j2 not found",
        "templates/web/a.j2:1: undefined variable: 'undefined_a' is undefined",
        "templates/web/b.j2:1: template syntax error: Expected an expression, got 'end of "
        "statement block'",
    ]


def test_problems_found_before_compiling_are_all_reported(ws: Workspace) -> None:
    result = check(ws, {
        "fleet.xml": fleet_xml('  <node name="bad"/>\n  <node name="web-01.p.c.elsewhere"/>\n'),
        "classes/web.xml": class_xml("web", '  <bogus/>\n', "base"),
    })
    assert [str(f.problem) for f in result.findings] == [
        "classes/web.xml:2: did not expect element bogus there",
        "fleet.xml:2: bad node name 'bad': expected class-NN.product.cluster.domain",
        "fleet.xml:3: node web-01.p.c.elsewhere is not in the fleet's domain 'sa'",
    ]


def test_the_report_is_bounded_and_counts_what_it_left_out(ws: Workspace) -> None:
    count = MAX_REPORTED + 25
    body = "".join(f'  <file path="/etc/f{i}" template="web/f{i}.j2"/>\n' for i in range(count))
    result = check(ws, {"classes/web.xml": class_xml("web", body, "base")})
    assert len(result.findings) == MAX_REPORTED
    assert result.omitted == 25


def test_parallel_workers_find_the_same_as_one_process(ws: Workspace) -> None:
    fleet = fleet_xml('  <defaults><var name="greeting">hi</var></defaults>\n'
                      '  <nodes class="web" product="tickets" cluster="chi1" count="300"/>\n'
                      '  <node name="web-07.tickets.chi1.sa"><var name="oops" type="int">1</var>'
                      '</node>\n')
    files = {"fleet.xml": fleet, "templates/base/motd.j2":
             "{% if node.number == 7 %}{{ oops + 'x' }}{% endif %}{{ greeting }}\n"}
    repo = ws.make_repo({**BASIC, **files}, commit=False)
    one = validate(open_snapshot(str(repo), None), 1)
    two = validate(open_snapshot(str(repo), None), 2)
    assert (one.nodes, one.files) == (two.nodes, two.files) == (300, 299)
    assert [str(f.problem) for f in one.findings] == [str(f.problem) for f in two.findings] == [
        "templates/base/motd.j2:1: TypeError: unsupported operand type(s) for +: 'int' and "
        "'str' (node web-07.tickets.chi1.sa)"]
