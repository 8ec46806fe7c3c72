"""The one unified diff of node reports and plans: only the lines around a change are
matched, and what it prints is what difflib prints for the whole file, or, where lines
repeat and more than one diff is right, one that `patch` applies."""

from __future__ import annotations

import difflib
import random
import subprocess
from pathlib import Path

import pytest

from reconciler.diff import unified_diff


def _whole_file_diff(old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True), "a/f", "b/f"))


def _edited(lines: list[str], chance: random.Random, alphabet: list[str]) -> list[str]:
    """`lines` with a few lines replaced, inserted and deleted at random places."""
    edited = list(lines)
    for _ in range(chance.randint(1, 4)):
        at = chance.randrange(len(edited) + 1)
        kind = chance.choice(["replace", "insert", "delete"])
        if kind == "insert" or not edited or at == len(edited):
            edited.insert(at, chance.choice(alphabet))
        elif kind == "replace":
            edited[at] = chance.choice(alphabet)
        else:
            del edited[at]
    return edited


def test_a_change_deep_in_a_long_file_is_numbered_as_in_the_whole_file() -> None:
    old = "".join(f"line {n}\n" for n in range(1, 201))
    new = old.replace("line 150\n", "line one hundred and fifty\n")

    diff = unified_diff(old.encode(), new.encode(), "a/f", "b/f")

    assert diff == _whole_file_diff(old, new)
    assert diff is not None and "@@ -147,7 +147,7 @@" in diff


@pytest.mark.parametrize("seed", range(200))
def test_a_diff_of_distinct_lines_is_what_difflib_prints_for_the_whole_file(seed: int) -> None:
    chance = random.Random(seed)
    lines = [f"distinct {n}\n" for n in range(chance.randint(1, 60))]
    new = _edited(lines, chance, [f"new {n}\n" for n in range(1000)])

    old_text, new_text = "".join(lines), "".join(new)

    assert unified_diff(old_text.encode(), new_text.encode(), "a/f", "b/f") == \
        _whole_file_diff(old_text, new_text)


@pytest.mark.parametrize("seed", range(40))
def test_a_diff_of_repeated_lines_applies_with_patch(tmp_path: Path, seed: int) -> None:
    chance = random.Random(seed)
    alphabet = ["}\n", "\n", "    listen 80;\n", "server {\n", "# comment\n"]
    lines = [chance.choice(alphabet) for _ in range(chance.randint(5, 80))]
    new = _edited(lines, chance, alphabet)
    target = tmp_path / "f"
    target.write_text("".join(lines))

    diff = unified_diff("".join(lines).encode(), "".join(new).encode(), "a/f", "b/f")
    applied = subprocess.run(["patch", "--quiet", "--force", str(target)], input=diff or "",
                             capture_output=True, text=True, check=False)

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert target.read_text() == "".join(new)


def test_a_last_line_without_a_newline_keeps_git_s_marker() -> None:
    old = "".join(f"line {n}\n" for n in range(1, 21)) + "last"
    new = old.replace("last", "final")

    diff = unified_diff(old.encode(), new.encode(), "a/f", "b/f")

    assert diff is not None
    assert diff.endswith("-last\n\\ No newline at end of file\n+final\n"
                         "\\ No newline at end of file\n")
