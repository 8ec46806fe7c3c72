"""Progress for long work: a bar on a terminal (a real pseudo-terminal here), and not one
byte more in a pipe, where scripts and log collectors read the output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import RECONCILER, reconciler
from ptyrun import in_terminal
from review_support import SMALL_FLEET

NODE = "db-01.shop.c1.t"  # a package and two files: every stage of a node's run

pytestmark = pytest.mark.usefixtures("isolated_git")


@pytest.fixture
def small(make_repo: Callable[..., Path]) -> Path:
    """Ten nodes: the bar counts them, and a node's run goes through its stages, as the
    example's 800 would, without rendering 800 nodes."""
    return make_repo(SMALL_FLEET)


def test_validate_shows_nodes_checked_on_a_terminal(small: Path) -> None:
    code, shown = in_terminal([RECONCILER, "validate", "--repo", small, "--jobs", "2"])

    assert code == 0, shown
    nodes = int(shown.split("ok: ")[1].split()[0])
    assert nodes == 10 and "validating nodes" in shown and "10/10" in shown


def test_validate_in_a_pipe_prints_only_its_verdict(small: Path) -> None:
    done = reconciler(["validate", "--repo", small, "--jobs", "2"], process=True)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("ok: ") and "validating" not in done.stdout


def test_apply_shows_its_stages_on_a_terminal(small: Path, tmp_path: Path) -> None:
    code, shown = in_terminal([RECONCILER, "apply", "--repo", small, "--node", NODE,
                               "--root", tmp_path / "node"])

    assert code != 1, shown
    assert all(stage in shown for stage in ("rendering", "checking", "applying"))


def test_audit_in_a_pipe_has_no_progress(small: Path, tmp_path: Path) -> None:
    done = reconciler(["audit", "--repo", small, "--node", NODE, "--root", tmp_path / "node"],
                      process=True)

    assert done.stderr == ""
    assert not any(word in done.stdout for word in ("checking", "auditing", "rendering"))
