"""Every folder under tests/scenarios/ is one engine scenario, run through the pipeline.

A scenario plants a node (before.toml), runs audit or apply against its config repo
in-process, and must produce its report (report.json) and its node (after.toml; without
one, the node is exactly as it was). Audit never touches the state directory. With
`settles`, an apply and an audit right after both find nothing to do.
UPDATE_SCENARIOS=1 rewrites report.json from what the engine now reports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from scenario_support import load, node_problems, project, run, scenario_folders


@pytest.mark.parametrize("folder", scenario_folders(), ids=lambda folder: folder.name)
def test_scenario(folder: Path, tmp_path: Path) -> None:
    scenario = load(folder)

    ran = run(scenario, tmp_path)

    expected = folder / "report.json"
    if os.environ.get("UPDATE_SCENARIOS"):
        expected.write_text(json.dumps(project(ran), indent=2, ensure_ascii=False) + "\n")
    assert project(ran) == json.loads(expected.read_text()), scenario.about
    assert [(again.result, again.exit_code) for again in ran.again] == \
        [("in-sync", 0)] * len(ran.again), "a second apply and an audit find nothing to do"
    assert node_problems(scenario, ran) == [], scenario.about
