"""Where is the followed branch now? Asked of the git remote as cheaply as its transport
allows: one connection and one protocol v2 `ls-refs` of that one ref, no pack.

Over git:// the question is spoken here, on one socket, with nothing else asked (no
peeled tags, symbolic refs or unborn HEAD; no process started on this side). Over any
other transport, or from a server that does not speak protocol v2, it is git's own
fetch of that one ref into the node's cache (git asks `ls-refs` with that ref's
prefixes, and brings a pack only when the tip moved), and the ref is read from the
cache. Either way the answer is only a reason to skip the full run: a tip that moved
or an answer that cannot be read sends the run to the full fetch.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from pathlib import Path

_SHA_RE = re.compile(rb"[0-9a-f]{40}|[0-9a-f]{64}")
_MAX_BYTES = 1 << 16  # one ref's answer is a line; more is not an answer to this question


class _NotV2(Exception):
    """The server answered, but not in protocol v2."""


def ask_git(url: str, branch: str, cache: str | os.PathLike[str], timeout: float) -> str | None:
    """The commit `url` has at `branch`; None when it cannot tell (no answer, no such
    branch)."""
    ref = f"refs/heads/{branch}"
    if url.startswith("git://"):
        try:
            return _ls_refs(url, ref, timeout)
        except _NotV2:
            pass
        except (OSError, ValueError):
            return None
    return _fetched(url, ref, Path(cache), timeout)


def _ls_refs(url: str, ref: str, timeout: float) -> str | None:
    """One v2 `ls-refs` of `ref` over git://."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc
    with socket.create_connection((parts.hostname or "", parts.port or 9418),
                                  timeout=timeout) as conn:
        conn.sendall(_pkt(f"git-upload-pack {parts.path}\0host={host}\0\0version=2\0".encode()))
        advertised = _until_flush(conn)
        if not advertised or advertised[0] != b"version 2\n":
            raise _NotV2
        conn.sendall(_pkt(b"command=ls-refs\n") + b"0001" + _pkt(f"ref-prefix {ref}\n".encode())
                     + b"0000")
        answer = _until_flush(conn)
        conn.sendall(b"0000")
    for line in answer:
        sha, _, name = line.rstrip(b"\n").partition(b" ")
        if name == ref.encode() and _SHA_RE.fullmatch(sha):
            return sha.decode()
    return None


def _pkt(data: bytes) -> bytes:
    return f"{len(data) + 4:04x}".encode() + data


def _until_flush(conn: socket.socket) -> list[bytes]:
    """The pkt-lines up to the next flush packet."""
    lines: list[bytes] = []
    total = 0
    while True:
        size = int(_read(conn, 4), 16)
        if size == 0:
            return lines
        if size < 4:
            raise ValueError("not a pkt-line")
        total += size
        if total > _MAX_BYTES:
            raise ValueError("too long an answer")
        lines.append(_read(conn, size - 4))


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ValueError("the server closed the connection")
        data += chunk
    return data


def _fetched(url: str, ref: str, cache: Path, timeout: float) -> str | None:
    """git's fetch of `ref` into the cache (nothing moved: no pack), then the ref."""
    from reconciler.git import Git, read_ref  # only a node without a git:// remote starts git
    from reconciler.source.cache import QUIET_FETCH

    done = Git(cache).run(*QUIET_FETCH, "fetch", "--no-tags", "--no-write-fetch-head",
                          "--quiet", "--", url, f"+{ref}:{ref}", timeout=timeout, network=True)
    if not done.ok:
        return None
    try:
        return read_ref(cache, ref)
    except (OSError, ValueError):
        return None
