"""Did the followed branch move? Asked of the static tip file the git server publishes.

The server's `post-receive` hook writes `reconciler-tip` into the bare repository: one
line per published branch, `<sha> refs/heads/<branch>`, replaced only when a tip moved.
Served by any web server or CDN (`tip-url` in agent.toml), it answers a node's
conditional GET (`If-None-Match` with the ETag of the copy the node saved) with a 304
and no process start. When the file names the commit the node already enforces, the
run skips git altogether.

The file is only ever a reason to skip git, never a reason to apply anything: a tip
that moved, a file that is missing, unreadable or garbage, or a server that does not
answer all send the run to git as before, and git (with its signatures checked) is
what the node applies. A stale file (a server whose hook did not run) can only delay
a change: the node asks git anyway once every `stamps.GIT_PERIOD`, at its own offset.

Without a tip file, a quiet `run` asks git itself (source/lsrefs.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import urllib.parse
from pathlib import Path

from reconciler.agent.urls import check_tip_url
from reconciler.atomicfile import write_atomic

TIP_FILE = "reconciler-tip"  # in the bare repository on the server (hooks/post-receive)
SAVED = "source-tip.json"  # in the state directory: the last answer and its ETag
_MAX_BYTES = 1 << 16  # a tip file is a few lines; more is not one
_LINE_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64}) (refs/heads/\S+)$")


def named_tip(body: bytes, branch: str) -> str | None:
    """The commit the tip file `body` names for `branch`; None when it names none or the
    file is not a tip file (every line must be `<sha> refs/heads/<branch>`)."""
    try:
        lines = body.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None
    found = None
    for line in lines:
        match = _LINE_RE.match(line)
        if match is None:
            return None
        if match.group(2) == f"refs/heads/{branch}":
            found = match.group(1)
    return found


def ask(url: str, branch: str, state_dir: str | os.PathLike[str], timeout: float) -> str | None:
    """The commit the tip file at `url` names for `branch`, asked with the ETag of the
    copy saved in `state_dir` (a 304 reuses it); None when it cannot tell."""
    saved_path = Path(state_dir) / SAVED
    saved = _saved(saved_path, url)
    try:
        status, body, etag = _get(url, saved.get("etag"), timeout)
    except (OSError, ValueError):
        return None
    if status == 304 and "body" in saved:
        return named_tip(saved["body"].encode("ascii", "replace"), branch)
    if status != 200:
        return None
    tip = named_tip(body, branch)
    if tip is not None and etag is not None and (saved.get("etag"), saved.get("body")) != \
            (etag, body.decode("ascii")):
        with contextlib.suppress(OSError):
            write_atomic(saved_path, json.dumps(
                {"url": url, "etag": etag, "body": body.decode("ascii")}).encode())
    return tip


def _saved(path: Path, url: str) -> dict[str, str]:
    """The saved answer for `url` (ETag and body), or nothing."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("url") != url:
        return {}
    return {key: data[key] for key in ("etag", "body") if isinstance(data.get(key), str)}


def _get(url: str, etag: str | None, timeout: float) -> tuple[int, bytes, str | None]:
    """One HTTP/1.0 GET of `url` (conditional on `etag`): status, body, and the answer's
    ETag. HTTP/1.0, so the body is never chunked and ends with the connection; a few
    lines of socket code instead of `http.client`, whose imports would cost a quiet run
    more than the question itself."""
    check_tip_url(url)
    parts = urllib.parse.urlsplit(url)
    host, https = parts.hostname or "", parts.scheme == "https"
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.0",
             f"Host: {parts.netloc.rpartition('@')[2]}", "User-Agent: reconciler"]
    if etag and "\r" not in etag and "\n" not in etag:
        lines.append(f"If-None-Match: {etag}")
    with socket.create_connection((host, parts.port or (443 if https else 80)),
                                  timeout=timeout) as plain:
        conn = plain
        if https:
            import ssl  # only for an https tip URL

            conn = ssl.create_default_context().wrap_socket(plain, server_hostname=host)
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := conn.recv(1 << 16):
            data += chunk
            if len(data) > 2 * _MAX_BYTES:
                raise ValueError("not a tip file: too long")
    head, blank, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not blank or not version.startswith("HTTP/") or len(body) > _MAX_BYTES:
        raise ValueError("not an HTTP answer with a tip file")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (field.partition(":") for field in fields)}
    if headers.get("content-length", str(len(body))) != str(len(body)):
        raise ValueError("the answer was cut short")
    return int(rest[:3]), body, headers.get("etag")
