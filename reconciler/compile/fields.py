"""Attribute values every action parser shares: node paths, modes, repo references."""

from __future__ import annotations

from reconciler.source.snapshot import clean_relpath


def check_node_path(raw: str) -> str:
    """An absolute path on the node, in canonical form: one spelling per file, so two
    actions on the same file always collide by id (`/etc//x` or `/etc/./x` is refused)."""
    if "\0" in raw:
        raise ValueError(f"path {raw!r} contains a NUL byte")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        raise ValueError(f"path {raw!r} contains a control character (a newline, a tab...): "
                         f"no record of it could be kept on one line")
    if not raw.startswith("/"):
        raise ValueError(f"path {raw!r} must be absolute")
    if ".." in raw.split("/"):
        raise ValueError(f"path {raw!r} must not contain '..'")
    canonical = "/" + "/".join(part for part in raw.split("/") if part not in ("", "."))
    if raw != canonical:
        raise ValueError(f"path {raw!r} is not in canonical form: write {canonical!r}")
    return raw


def managed_path(raw: str) -> str:
    """The path of an action that manages something at it: a node path, and never `/`
    itself (the root can be neither written, nor replaced, nor removed)."""
    path = check_node_path(raw)
    if path == "/":
        raise ValueError("path '/' is the root itself: an action manages something below it")
    return path


def mode(raw: str | None) -> int | None:
    return int(raw, 8) if raw is not None else None


def template_ref(raw: str | None, what: str) -> str | None:
    """A file under templates/, checked to stay inside it (None when not given)."""
    return None if raw is None else clean_relpath(raw, what)


def words(raw: str | None) -> tuple[str, ...] | None:
    """A space-separated list attribute; None when the attribute is not given."""
    return None if raw is None else tuple(raw.split())


def boolean(raw: str | None) -> bool | None:
    """"true"/"false" (the schema allows nothing else); None when not given."""
    return None if raw is None else raw == "true"
