"""The one unified diff of two file contents, for node reports and fleet plans alike."""

from __future__ import annotations

import difflib

NO_NEWLINE = "\\ No newline at end of file\n"
CONTEXT = 3  # lines of context around each change, as diff -u and git give


def unified_diff(
    old: bytes | None,
    new: bytes,
    from_label: str,
    to_label: str,
    *,
    max_lines: int | None = None,
) -> str | None:
    """A unified diff from `old` (None: the file is new) to `new`, with git's marker for a
    last line without a newline and cut after `max_lines` lines; None when either side
    is not UTF-8 text (the caller says what changed instead)."""
    try:
        old_text = old.decode("utf-8") if old is not None else ""
        new_text = new.decode("utf-8")
    except UnicodeDecodeError:
        return None
    new_lines = new_text.splitlines(keepends=True)
    if old_text or not new_lines:
        lines = _trimmed_diff(old_text.splitlines(keepends=True), new_lines,
                              from_label, to_label)
    else:  # a new file: what difflib says, without matching against nothing line by line
        count = len(new_lines)
        lines = [f"--- {from_label}\n", f"+++ {to_label}\n",
                 f"@@ -0,0 +{'1' if count == 1 else f'1,{count}'} @@\n",
                 *(f"+{line}" for line in new_lines)]
    if max_lines is not None and len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... diff cut at {max_lines} lines\n"]
    return "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}" for line in lines)


def _trimmed_diff(old: list[str], new: list[str], from_label: str, to_label: str
                  ) -> list[str]:
    """difflib's unified diff, with only the lines between the first and the last that
    differ matched against each other: a one-line change in a long file is matched over
    one line instead of the whole file (a plan diffs thousands of them)."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    if prefix == len(old) == len(new):
        return []
    middle = difflib.SequenceMatcher(None, old[prefix:len(old) - suffix],
                                     new[prefix:len(new) - suffix])
    matcher = _Opcodes([("equal", 0, prefix, 0, prefix)]
                       + [(tag, i1 + prefix, i2 + prefix, j1 + prefix, j2 + prefix)
                          for tag, i1, i2, j1, j2 in middle.get_opcodes()]
                       + [("equal", len(old) - suffix, len(old), len(new) - suffix, len(new))])
    lines = [f"--- {from_label}\n", f"+++ {to_label}\n"]
    for group in matcher.get_grouped_opcodes(CONTEXT):
        lines.append(f"@@ -{_range(group[0][1], group[-1][2])} "
                     f"+{_range(group[0][3], group[-1][4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [f" {line}" for line in old[i1:i2]]
                continue
            lines += [f"-{line}" for line in old[i1:i2]]
            lines += [f"+{line}" for line in new[j1:j2]]
    return lines


class _Opcodes(difflib.SequenceMatcher):  # type: ignore[type-arg]
    """A matcher whose opcodes are given: difflib's grouping of them into hunks."""

    def __init__(self, opcodes: list[tuple[str, int, int, int, int]]) -> None:
        super().__init__()
        self.opcodes = [op for op in opcodes if op[1] < op[2] or op[3] < op[4]]


def _range(start: int, stop: int) -> str:
    """A hunk's line range as unified diffs write it (difflib's `_format_range_unified`)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if length == 0 else start + 1},{length}"
