"""fleet.xml's `<rollout>`: waves resolved to their nodes once per revision, and every
mistake in it refused by validate at its file:line."""

from __future__ import annotations

from datetime import timedelta

from configrepo import BASIC, Workspace, fleet_xml

from reconciler.compile.compiler import load_fleet
from reconciler.review.validate import validate
from reconciler.rollout.model import REST, Rollout
from reconciler.source.snapshot import open_snapshot

NODES = ('  <nodes class="web" product="tickets" cluster="chi1" count="6"/>\n'
         '  <nodes class="web" product="events" cluster="lax2" count="4"/>\n')


def rollout_of(ws: Workspace, body: str) -> Rollout:
    repo = ws.make_repo({**BASIC, "fleet.xml": fleet_xml(NODES + body)}, commit=False)
    rollout = load_fleet(open_snapshot(str(repo), None)).rollout
    assert rollout is not None
    return rollout


def problems(ws: Workspace, body: str) -> list[str]:
    repo = ws.make_repo({**BASIC, "fleet.xml": fleet_xml(NODES + body)}, commit=False)
    return [str(f.problem) for f in validate(open_snapshot(str(repo), None), 1).findings]


def test_each_node_is_in_the_first_wave_that_selects_it_and_the_rest_come_last(
    ws: Workspace,
) -> None:
    rollout = rollout_of(ws, '  <rollout soak="10m" max-failures="1">\n'
                             '    <wave name="canary">'
                             '<node name="web-02.tickets.chi1.sa"/></wave>\n'
                             '    <wave name="chi1" cluster="chi1"/>\n'
                             '    <wave name="half" product="events" percent="50"/>\n'
                             '  </rollout>\n')
    assert (rollout.soak, rollout.max_failures) == (timedelta(minutes=10), 1)
    canary, chi1, half, rest = rollout.waves
    assert canary.nodes == ("web-02.tickets.chi1.sa",)
    assert len(chi1.nodes) == 5 and "web-02.tickets.chi1.sa" not in chi1.nodes
    assert len(half.nodes) == 2 and all(".events.lax2." in n for n in half.nodes)
    assert rest.name == REST and set(rest.nodes) == {
        f"web-{n:02d}.events.lax2.sa" for n in range(1, 5)} - set(half.nodes)
    assert rollout.wave_of("web-02.tickets.chi1.sa") == 0
    assert rollout.wave_of(rest.nodes[0]) == 3


def test_a_percentage_picks_the_same_nodes_whatever_else_the_fleet_holds(
    ws: Workspace,
) -> None:
    wave = '  <rollout><wave name="some" product="events" percent="50"/></rollout>\n'
    first = rollout_of(ws, wave).waves[0].nodes
    ws.tmp = ws.tmp / "again"
    bigger = rollout_of(ws, '  <nodes class="web" product="shop" cluster="chi1" count="3"/>\n'
                            + wave).waves[0].nodes
    assert first == bigger


def test_validate_refuses_unknown_members_overlaps_and_bad_durations(ws: Workspace) -> None:
    found = problems(ws, '  <rollout soak="ten minutes">\n'
                         '    <wave name="canary">\n'
                         '      <node name="web-01.tickets.chi1.sa"/>\n'
                         '      <node name="web-09.tickets.chi1.sa"/>\n'
                         '    </wave>\n'
                         '    <wave name="again"><node name="web-01.tickets.chi1.sa"/></wave>\n'
                         '    <wave name="db" class="database"/>\n'
                         '    <wave name="nyc" cluster="nyc1"/>\n'
                         '    <wave name="canary" product="events"/>\n'
                         '  </rollout>\n')
    assert found == [
        "fleet.xml:4: soak 'ten minutes' is not a duration (e.g. 90s, 15m, 2h, 1d)",
        "fleet.xml:7: wave 'canary': unknown node 'web-09.tickets.chi1.sa' (not in this fleet)",
        "fleet.xml:9: wave 'again': node web-01.tickets.chi1.sa is already in a wave (line 6)",
        "fleet.xml:10: wave 'db': unknown class 'database' (no node of the fleet has it)",
        "fleet.xml:11: wave 'nyc': unknown cluster 'nyc1' (no node of the fleet has it)",
        "fleet.xml:12: wave 'canary' is declared twice (first at line 5)",
    ]


def test_validate_refuses_a_node_listed_after_a_wave_that_selects_it(ws: Workspace) -> None:
    found = problems(ws, '  <rollout>\n'
                         '    <wave name="chi1" cluster="chi1"/>\n'
                         '    <wave name="late"><node name="web-01.tickets.chi1.sa"/></wave>\n'
                         '  </rollout>\n')
    assert found == ["fleet.xml:6: wave 'late': node web-01.tickets.chi1.sa is already in wave "
                     "'chi1', which selects it"]


def test_validate_refuses_a_wave_that_lists_and_selects_and_a_second_rollout(
    ws: Workspace,
) -> None:
    found = problems(ws, '  <rollout>\n'
                         '    <wave name="mixed" cluster="chi1">'
                         '<node name="web-01.tickets.chi1.sa"/></wave>\n'
                         '  </rollout>\n'
                         '  <rollout><wave name="all"/></rollout>\n')
    assert found == [
        "fleet.xml:7: a second <rollout> (the first is at line 4): a fleet has one rollout",
        "fleet.xml:5: wave 'mixed' both lists nodes and selects them: use one or the other",
    ]
