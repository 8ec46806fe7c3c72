"""Change windows: inside the policy's window the ceiling is its window-severity;
outside, what only the window allows is held, saying when the window opens, and is
applied by the first run inside it. Times come from an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from configrepo import BASIC, Workspace
from engine_support import change, desired, make_repo

from reconciler.compile.nodeconfig import Severity
from reconciler.review.validate import validate
from reconciler.rollout import window
from reconciler.run import RunClock, converge
from reconciler.source.snapshot import open_snapshot
from reconciler.statedir import StateDir
from reconciler.system.local import LocalSystem

TUE_THU = window.parse("Tue,Thu 02:00-04:00 UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(("moment", "inside"), [
    ("2026-12-01T01:59:59+00:00", False),  # Tuesday, a second before
    ("2026-12-01T02:00:00+00:00", True),
    ("2026-12-01T03:59:59+00:00", True),
    ("2026-12-01T04:00:00+00:00", False),  # closed
    ("2026-12-02T02:30:00+00:00", False),  # Wednesday
    ("2026-12-03T02:30:00+00:00", True),   # Thursday
    ("2026-12-01T03:30:00+05:00", False),  # 22:30 UTC on Monday, written in another zone
])
def test_a_window_holds_its_days_and_hours_and_not_a_second_more(moment: str,
                                                                 inside: bool) -> None:
    assert TUE_THU.contains(at(moment)) is inside


def test_a_window_in_a_zone_follows_its_wall_clock_through_daylight_saving() -> None:
    paris = window.parse("Sun 02:30-03:30 Europe/Paris")
    assert paris.contains(at("2026-01-04T01:45:00+00:00"))  # winter: 02:45 CET
    assert not paris.contains(at("2026-07-05T01:45:00+00:00"))  # summer: 03:45 CEST
    assert paris.contains(at("2026-07-05T00:45:00+00:00"))  # summer: 02:45 CEST
    assert paris.next_opening(at("2026-07-01T12:00:00+00:00")) == "Sun 02:30 Europe/Paris"


def test_a_window_past_midnight_belongs_to_the_day_it_opens() -> None:
    late = window.parse("Fri-Sat 23:00-01:00 America/New_York")
    assert late.contains(at("2026-12-05T04:30:00+00:00"))  # Fri 23:30 in New York
    assert late.contains(at("2026-12-06T05:30:00+00:00"))  # Sun 00:30, opened Saturday
    assert not late.contains(at("2026-12-07T05:30:00+00:00"))  # Mon 00:30
    assert late.next_opening(at("2026-12-07T05:30:00+00:00")) == "Fri 23:00 America/New_York"


def test_the_next_opening_is_named_in_the_windows_own_zone() -> None:
    assert TUE_THU.next_opening(at("2026-12-01T04:00:00+00:00")) == "Thu 02:00 UTC"
    assert TUE_THU.next_opening(at("2026-12-03T05:00:00+00:00")) == "Tue 02:00 UTC"


WINDOWED = 'max-severity="reload" window="Tue,Thu 02:00-04:00 UTC" window-severity="restart"'
RESTARTS = '<file path="/etc/app.conf" severity="restart"><content>new</content></file>\n'


def run_at(tmp_path: Path, moment: str) -> tuple[str | None, str]:
    """(why /etc/app.conf is held, the ceiling) of one apply run at `moment`."""
    repo = make_repo(tmp_path, RESTARTS, defaults=WINDOWED)
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    state = StateDir.under(root)
    system = LocalSystem(str(root), backup_dir=str(state.backups))
    done = converge(desired(repo), system, state, "change", clock=RunClock(started=at(moment)))
    found = change(done, "file:/etc/app.conf")
    return found.detail if found.status == "held" else None, done.ceiling


def test_outside_the_window_a_restart_waits_for_it(tmp_path: Path) -> None:
    held, ceiling = run_at(tmp_path, "2026-12-01T01:59:00+00:00")
    assert (held, ceiling) == ("waiting for window Tue 02:00 UTC", "reload")
    assert not (tmp_path / "root/etc/app.conf").exists()


def test_the_first_run_inside_the_window_applies_what_waited(tmp_path: Path) -> None:
    held, ceiling = run_at(tmp_path, "2026-12-01T02:00:00+00:00")
    assert (held, ceiling) == (None, "restart")
    assert (tmp_path / "root/etc/app.conf").read_text() == "new"


def test_what_the_window_does_not_allow_is_held_as_above_the_ceiling(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, RESTARTS.replace("restart", "reboot"), defaults=WINDOWED)
    root = tmp_path / "root"
    root.mkdir()
    state = StateDir.under(root)
    done = converge(desired(repo), LocalSystem(str(root), backup_dir=str(state.backups)),
                    state, "change", clock=RunClock(started=at("2026-12-01T01:00:00+00:00")))
    assert change(done, "file:/etc/app.conf").detail == (
        "severity reboot is above the ceiling reload")


def test_an_explicit_ceiling_overrides_the_window(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, RESTARTS, defaults=WINDOWED)
    root = tmp_path / "root"
    root.mkdir()
    state = StateDir.under(root)
    done = converge(desired(repo), LocalSystem(str(root), backup_dir=str(state.backups)),
                    state, "change", Severity.RESTART,
                    clock=RunClock(started=at("2026-12-01T01:00:00+00:00")))
    assert (done.ceiling, change(done, "file:/etc/app.conf").status) == ("restart", "applied")


@pytest.mark.parametrize(("value", "message"), [
    ("Tue 2:00-4:00", "window 'Tue 2:00-4:00' is not DAYS HH:MM-HH:MM [ZONE] "
                      '(e.g. "Tue,Thu 02:00-04:00 UTC")'),
    ("Tue,Thr 02:00-04:00", "window 'Tue,Thr 02:00-04:00': 'thr' is not a day or a range of "
                            "days (Mon, Tue, Wed, Thu, Fri, Sat, Sun; e.g. Mon-Fri)"),
    ("Tue 02:00-04:00 Mars/Olympus", "window 'Tue 02:00-04:00 Mars/Olympus': unknown time "
                                     "zone 'Mars/Olympus'"),
    ("Tue 25:00-04:00", "window 'Tue 25:00-04:00': a time is not HH:MM between 00:00 and "
                        "23:59"),
    ("Tue 02:00-02:00", "window 'Tue 02:00-02:00' opens and closes at the same time"),
])
def test_validate_refuses_a_bad_window_at_its_line(ws: Workspace, value: str,
                                                   message: str) -> None:
    fleet = BASIC["fleet.xml"].replace('<policy max-severity="reload"/>',
                                       f'<policy max-severity="reload" window="{value}"/>')
    assert fleet != BASIC["fleet.xml"]
    repo = ws.make_repo({**BASIC, "fleet.xml": fleet}, commit=False)
    found = [str(f.problem) for f in validate(open_snapshot(str(repo), None), 1).findings]
    assert found == [f"fleet.xml:3: {message}"]


def test_validate_accepts_a_window_in_a_class_and_a_node(ws: Workspace) -> None:
    node = ('  <node name="web-01.tickets.chi1.sa"><policy window="Mon-Fri 22:00-06:00 '
            'Europe/Berlin" window-severity="reboot"/></node>\n</fleet>')
    web = BASIC["classes/web.xml"].replace("<package", '<policy window="Sat 01:00-02:00"/>'
                                                      "\n  <package")
    repo = ws.make_repo({**BASIC, "fleet.xml": BASIC["fleet.xml"].replace("</fleet>", node),
                         "classes/web.xml": web}, commit=False)
    assert validate(open_snapshot(str(repo), None), 1).ok
