"""Edits of text files as pure functions: ensure a line, a marked block, an fstab entry.

Each edit takes the file's text and returns the new text, so a change can be planned
against the live file and re-applied to whatever the file holds at apply time (several
actions may edit one file in a run). Bytes that are not UTF-8 survive untouched
(surrogateescape).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Edit = Callable[[str], str]


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _join(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class Whole:
    """An edit that makes the file exactly `content`, whatever it held."""

    content: str

    def __call__(self, text: str) -> str:
        return self.content


# -- a line -------------------------------------------------------------------------


@dataclass(frozen=True)
class LineEdit:
    """Ensure `line` is present (replacing the first line `match` finds, else appended),
    or absent (every line equal to it or matched by `match`)."""

    line: str
    match: str | None
    present: bool

    def _matches(self, candidate: str) -> bool:
        if self.match is not None and re.search(self.match, candidate):
            return True
        return candidate == self.line and (self.present or bool(self.line))

    def found(self, text: str) -> str | None:
        """The live line this edit manages: the line itself, else the first one matched."""
        lines = _lines(text)
        if self.present and self.line in lines:
            return self.line
        return next((line for line in lines if self._matches(line)), None)

    def __call__(self, text: str) -> str:
        lines = _lines(text)
        if not self.present:
            kept = [line for line in lines if not self._matches(line)]
            return text if kept == lines else _join(kept)
        if self.line in lines:
            return text
        for index, line in enumerate(lines):
            if self._matches(line):
                lines[index] = self.line
                return _join(lines)
        return _join([*lines, self.line])


# -- a marked block -------------------------------------------------------------------


class BrokenBlock(ValueError):
    """A begin marker without its end marker (or the other way round): refusing to guess."""


@dataclass(frozen=True)
class BlockEdit:
    """Ensure the lines between `# BEGIN reconciler NAME` and `# END reconciler NAME` are
    `content` (the block is appended when missing), or that the block is gone."""

    name: str
    comment: str
    content: str | None  # None: absent

    @property
    def begin(self) -> str:
        return f"{self.comment} BEGIN reconciler {self.name}"

    @property
    def end(self) -> str:
        return f"{self.comment} END reconciler {self.name}"

    def _span(self, lines: list[str]) -> tuple[int, int] | None:
        starts = [i for i, line in enumerate(lines) if line.strip() == self.begin]
        ends = [i for i, line in enumerate(lines) if line.strip() == self.end]
        if not starts and not ends:
            return None
        if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
            raise BrokenBlock(f"the markers of block {self.name!r} are broken "
                              f"({len(starts)} begin, {len(ends)} end): fix the file by hand")
        return starts[0], ends[0]

    def found(self, text: str) -> str | None:
        """The live block's content (without its markers), or None when there is none."""
        lines = _lines(text)
        span = self._span(lines)
        return None if span is None else _join(lines[span[0] + 1:span[1]])

    def __call__(self, text: str) -> str:
        lines = _lines(text)
        span = self._span(lines)
        block = [] if self.content is None else \
            [self.begin, *_lines(self.content), self.end]
        if span is None:
            return text if not block else _join([*lines, *block])
        new = [*lines[:span[0]], *block, *lines[span[1] + 1:]]
        return text if new == lines else _join(new)


# -- an fstab entry --------------------------------------------------------------------


def fstab_escape(field: str) -> str:
    """A field as fstab writes it: space, tab, newline and backslash as octal escapes."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in field)


def fstab_unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class FstabEdit:
    """Ensure the entry for mount point `point` is `entry` (replacing the first entry of
    that point, dropping later ones), or that no entry for it remains (`entry` None)."""

    point: str
    entry: str | None

    def _is_entry(self, line: str) -> bool:
        fields = line.split()
        return len(fields) >= 2 and not fields[0].startswith("#") and \
            fstab_unescape(fields[1]) == self.point

    def found(self, text: str) -> str | None:
        """The live entry for the mount point, or None."""
        return next((line for line in _lines(text) if self._is_entry(line)), None)

    def __call__(self, text: str) -> str:
        lines = _lines(text)
        new: list[str] = []
        placed = False
        for line in lines:
            if not self._is_entry(line):
                new.append(line)
            elif self.entry is not None and not placed:
                new.append(self.entry)
                placed = True
        if self.entry is not None and not placed:
            new.append(self.entry)
        return text if new == lines else _join(new)


def fstab_entry(device: str, point: str, fstype: str, options: str, dump: int,
                fsck_pass: int) -> str:
    """One fstab line, fields separated by a tab."""
    return "\t".join([fstab_escape(device), fstab_escape(point), fstype, options, str(dump),
                      str(fsck_pass)])
