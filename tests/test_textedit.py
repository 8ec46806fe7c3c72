"""Edits of text files as values: what a line, block or fstab edit makes of a file."""

from __future__ import annotations

import pytest

from reconciler.actions.textedit import (
    BlockEdit,
    BrokenBlock,
    FstabEdit,
    LineEdit,
    decode,
    encode,
    fstab_entry,
)


def test_a_line_already_present_leaves_the_file_byte_for_byte() -> None:
    text = "a\n10.1.0.5 apt.sa\nno final newline"
    assert LineEdit("10.1.0.5 apt.sa", r"apt\.sa", True)(text) is text


def test_match_replaces_only_the_first_matching_line() -> None:
    edit = LineEdit("x = 2", r"^x\s*=", True)
    assert edit("x = 1\ny = 0\nx = 3\n") == "x = 2\ny = 0\nx = 3\n"
    assert edit.found("x = 1\ny = 0\n") == "x = 1"


def test_absent_without_a_line_never_removes_blank_lines() -> None:
    assert LineEdit("", r"^old", False)("a\n\nold one\n") == "a\n\n"


def test_bytes_that_are_not_utf8_survive_an_edit() -> None:
    data = b"caf\xe9 latin-1\n"
    assert encode(LineEdit("new", None, True)(decode(data))) == data + b"new\n"


def test_a_block_is_replaced_between_its_markers_only() -> None:
    text = "top\n# BEGIN reconciler b\nold\n# END reconciler b\nbottom\n"
    edit = BlockEdit("b", "#", "new\n")
    assert edit(text) == "top\n# BEGIN reconciler b\nnew\n# END reconciler b\nbottom\n"
    assert BlockEdit("b", "#", None)(text) == "top\nbottom\n"
    assert edit.found(text) == "old\n"


def test_two_begin_markers_are_refused() -> None:
    text = "# BEGIN reconciler b\n# BEGIN reconciler b\n# END reconciler b\n"
    with pytest.raises(BrokenBlock):
        BlockEdit("b", "#", "x\n")(text)


def test_an_fstab_edit_keeps_comments_and_drops_later_entries_of_its_point() -> None:
    text = "# /srv/data was here\n/dev/a /srv/data ext4 defaults 0 0\nproc /proc proc d 0 0\n" \
           "/dev/b /srv/data xfs defaults 0 0\n"
    entry = fstab_entry("/dev/c", "/srv/data", "ext4", "noatime", 0, 2)
    assert FstabEdit("/srv/data", entry)(text) == \
        f"# /srv/data was here\n{entry}\nproc /proc proc d 0 0\n"


def test_an_fstab_entry_escapes_spaces_and_is_found_by_its_unescaped_point() -> None:
    entry = fstab_entry("server:/x", "/mnt/my files", "nfs", "ro", 0, 0)
    assert entry == "server:/x\t/mnt/my\\040files\tnfs\tro\t0\t0"
    assert FstabEdit("/mnt/my files", None).found(f"{entry}\n") == entry
