"""A full plan renders at the base only the files whose inputs differ from the head's
(review/reuse.py); over random edits of a small fleet with every kind of dependency, it
equals the plan that renders every file at both revisions. The edits are the property
test's (test_review_incremental.py), with their own seed: three rounds of every kind
catch every planted mistake that four caught (a variable read or a dependency touched
ignored, an include not followed, `nodes()` not seen); two miss the last two."""

from __future__ import annotations

import random
from pathlib import Path

from review_support import run
from test_review_incremental import _comparable, _edit, _kinds, _trimmed_fleet, commit

from reconciler.review.fleetplan import plan_fleet

EDITS = 24
SEED = 29


def test_full_plan_reusing_the_heads_files_equals_rendering_both_revisions(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    repo = _trimmed_fleet(tmp_path, home)
    rng = random.Random(SEED)
    valid = 0
    for step, kind in enumerate(_kinds(rng, EDITS)):
        what = _edit(repo, rng, step, kind, "web/site")
        commit(repo, home, what)
        plans = [plan_fleet(str(repo), "HEAD~1", "HEAD", jobs=1, full=True,
                            keep_records=False, reuse=reuse) for reuse in (True, False)]
        assert _comparable(plans[0]) == _comparable(plans[1]), f"edit {step}: {what}"
        valid += plans[0].valid
        if not plans[0].valid:
            run(["git", "reset", "-q", "--hard", "HEAD~1"], repo, home)
    assert valid >= EDITS // 2, "most edits give a valid head"
