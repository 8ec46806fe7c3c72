"""The one unified diff of two file contents, for node reports and fleet plans alike."""

from __future__ import annotations

import difflib

NO_NEWLINE = "\\ No newline at end of file\n"


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
        lines = list(difflib.unified_diff(old_text.splitlines(keepends=True), new_lines,
                                          fromfile=from_label, tofile=to_label))
    else:  # a new file: what difflib says, without matching against nothing line by line
        count = len(new_lines)
        lines = [f"--- {from_label}\n", f"+++ {to_label}\n",
                 f"@@ -0,0 +{'1' if count == 1 else f'1,{count}'} @@\n",
                 *(f"+{line}" for line in new_lines)]
    if max_lines is not None and len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... diff cut at {max_lines} lines\n"]
    return "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}" for line in lines)
