"""Output anywhere: in a pipe one record per line (what grep and log collectors want), and
on an 80-column terminal no path or file:line broken in two."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from clirun import RECONCILER, reconciler
from configrepo import git_env
from ptyrun import in_terminal

NODE = "proxy-01.tickets.chi1.sa"
ORIGIN = re.compile(r"[\w./-]+\.xml:\d+")

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example fleet, which every test only reads."""
    base = tmp_path_factory.mktemp("example")
    (base / "home").mkdir()
    repo = base / "fleet"
    assert reconciler(["init", repo], env=git_env(base / "home")).returncode == 0
    return repo


def _grep(out: str, word: str) -> list[str]:
    return [line for line in out.splitlines() if word in line]


def test_explain_in_a_pipe_prints_each_variable_on_one_line(fleet: Path) -> None:
    out = reconciler(["explain", "--repo", fleet, NODE], env={"COLUMNS": "80"}).stdout

    [datacenter] = _grep(out, "variables: datacenter ")
    assert datacenter.startswith("variables: datacenter  Chicago, site 1  vars cluster=chi1  ")
    assert ORIGIN.search(datacenter)
    [nginx] = _grep(out, "actions: package:nginx ")
    assert ORIGIN.search(nginx) and "restart" in nginx
    assert not any(line[:1].isdigit() for line in out.splitlines())  # no stray "0" of ":170"


def test_audit_in_a_pipe_prints_each_change_with_its_reason_on_one_line(
    fleet: Path, tmp_path: Path
) -> None:
    out = reconciler(["audit", "--repo", fleet, "--node", NODE, "--root", tmp_path / "node"],
                     env={"COLUMNS": "80"}).stdout

    [nginx] = _grep(out, " package:nginx ")
    assert nginx.startswith("held restart package:nginx install nginx; held: apt-get installs")
    assert "status" not in out.splitlines()[1]  # no table header


def test_explain_on_an_80_column_terminal_keeps_every_file_line_whole(fleet: Path) -> None:
    piped = reconciler(["explain", "--repo", fleet, NODE]).stdout

    code, shown = in_terminal([RECONCILER, "explain", "--repo", fleet, NODE], columns=80)

    assert code == 0, shown
    assert sorted(ORIGIN.findall(shown)) == sorted(ORIGIN.findall(piped))


def test_audit_on_an_80_column_terminal_keeps_every_path_whole(fleet: Path,
                                                               tmp_path: Path) -> None:
    argv: list[str | Path] = ["audit", "--repo", fleet, "--node", NODE, "--root", tmp_path / "node"]
    report = json.loads(reconciler([*argv, "--format", "json"]).stdout)

    code, shown = in_terminal([RECONCILER, *argv], columns=80)

    assert code != 1, shown
    words = set(shown.split())
    paths = {c["path"] for a in report["actions"] for c in a["changes"] if c["path"]}
    assert paths and all(path in shown for path in paths)
    assert all(a["id"] in words for a in report["actions"] if a["status"] != "in-sync")
